// The signed-in user's token. It lives in this module's memory, and in the
// tab's sessionStorage only when the user asked for it (it is then gone
// when the tab closes). It is never put in local storage, a cookie or a URL.

const STORE_KEY = 'tenantcrypt.console.token';
const SIGNED_OUT_KEY = 'tenantcrypt.console.signedOut';

let current = null; // {token, source, claims}

// claimsOf decodes a JWT's payload for display (tenant, subject, roles,
// expiry). It verifies nothing: the server does, on every call.
export function claimsOf(token) {
  const parts = String(token).split('.');
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const padded = b64 + '='.repeat((4 - (b64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

// looksLikeJWT checks the shape of a pasted token (three base64url parts).
export function looksLikeJWT(token) {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token);
}

// signIn makes token the console's token. source is 'sso', 'pasted' or
// 'dev'; remember keeps it in sessionStorage for this tab.
export function signIn(token, source, remember) {
  current = { token, source, claims: claimsOf(token) || {} };
  try {
    sessionStorage.removeItem(SIGNED_OUT_KEY);
    if (remember) sessionStorage.setItem(STORE_KEY, JSON.stringify({ token, source }));
    else sessionStorage.removeItem(STORE_KEY);
  } catch { /* storage disabled: memory only */ }
  return current;
}

// signOut forgets the token (memory and sessionStorage). explicit marks
// that the user chose to sign out, so that a reload does not sign them in
// with the SSO token again without asking.
export function signOut(explicit) {
  current = null;
  try {
    sessionStorage.removeItem(STORE_KEY);
    if (explicit) sessionStorage.setItem(SIGNED_OUT_KEY, '1');
  } catch { /* nothing stored */ }
}

export function signedOutExplicitly() {
  try { return sessionStorage.getItem(SIGNED_OUT_KEY) === '1'; } catch { return false; }
}

// remembered returns the token kept in sessionStorage, if any.
export function remembered() {
  try {
    const v = JSON.parse(sessionStorage.getItem(STORE_KEY) || 'null');
    return v && typeof v.token === 'string' ? v : null;
  } catch {
    return null;
  }
}

export function token() { return current ? current.token : ''; }
export function user() { return current; }

// expiresIn is the time left before the token's exp, in ms (Infinity
// without exp).
export function expiresIn() {
  if (!current || !current.claims.exp) return Infinity;
  return current.claims.exp * 1000 - Date.now();
}
