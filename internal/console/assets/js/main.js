// The console's entry point: sign-in (single sign-on, a pasted token, or a
// development token), the header, and the hash router between the views.

import * as auth from './auth.js';
import { createClient, session as fetchSession, devToken, KP } from './api.js';
import { h, replace, announce, focus, formatTime } from './dom.js';
import { showFieldError, clearFieldError } from './dialog.js';
import { statusView } from './status.js';
import { providersView } from './providers.js';
import { auditView } from './audit.js';

const ROUTES = {
  status: { title: 'Encryption status', view: statusView },
  keys: { title: 'Key providers', view: providersView },
  audit: { title: 'Audit log', view: auditView },
};

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');

let sessionInfo = { devTokens: false };
let view = null;
let expiryTimers = [];

const api = createClient({ token: auth.token, onUnauthorized: (err) => ended(err) });

async function boot() {
  try {
    sessionInfo = await fetchSession();
  } catch {
    sessionInfo = { devTokens: false };
  }
  const kept = auth.remembered();
  if (sessionInfo.token && !auth.signedOutExplicitly()) {
    await attempt(sessionInfo.token, 'sso', false, { initial: true });
  } else if (kept) {
    await attempt(kept.token, kept.source, true, { initial: true });
  } else {
    signInView({ initial: true });
  }
}

// attempt checks a token against the API (it must be a tenant admin's of
// an existing tenant) and signs in with it, or shows why not.
async function attempt(token, source, remember, { initial, onError } = {}) {
  const claims = auth.claimsOf(token) || {};
  const probe = createClient({ token: () => token });
  try {
    await probe.get(`${KP}/actions/list`);
  } catch (err) {
    const message = refusal(err, claims);
    if (onError) onError(message);
    else signInView({ error: message, initial });
    return false;
  }
  auth.signIn(token, source, remember);
  enter(initial);
  return true;
}

// refusal explains why a token cannot be used here.
function refusal(err, claims) {
  const roles = Array.isArray(claims.roles) ? claims.roles.join(', ') : '';
  if (err.status === 403 && err.code === 'Encryption-03') {
    return `This token cannot manage a tenant's encryption: the console needs the tenant-admin role${roles ? ` (the token has: ${roles})` : ''}.`;
  }
  if (err.code === 'Encryption-07') {
    return `The token's tenant${claims.tenantId ? ` “${claims.tenantId}”` : ''} does not exist.`;
  }
  if (err.status === 401) return `The token was refused: ${err.detail || err.title}.`;
  return `The server could not be asked: ${err.text}`;
}

function enter(initial) {
  const u = auth.user();
  const c = u.claims;
  const via = { sso: 'single sign-on', pasted: 'a pasted token', dev: 'a development token' }[u.source] || u.source;
  replace(who,
    h('span', { class: 'who-id' }, 'Tenant ', h('strong', { 'data-testid': 'who-tenant' }, c.tenantId || '?')),
    h('span', { class: 'who-id', title: `Signed in with ${via}` }, h('span', { class: 'visually-hidden' }, 'Signed in as '), c.sub || '',
      h('span', { class: 'visually-hidden' }, ` with ${via}`)),
    c.exp ? h('span', null, `Token valid until ${formatTime(new Date(c.exp * 1000))}`) : null,
    h('button', { type: 'button', 'data-action': 'sign-out', onclick: signOut }, 'Sign out'));
  who.hidden = false;
  nav.hidden = false;
  scheduleExpiry();
  announce(`Signed in to tenant ${c.tenantId || ''} with ${via}.`);
  if (!location.hash.startsWith('#/')) history.replaceState(null, '', '#/status');
  route(!initial);
}

function scheduleExpiry() {
  expiryTimers.forEach(clearTimeout);
  expiryTimers = [];
  const left = auth.expiresIn();
  if (!Number.isFinite(left)) return;
  // setTimeout's limit is 2^31-1 ms; tokens live far shorter.
  if (left > 60000) expiryTimers.push(setTimeout(() => announce('Your sign-in ends in one minute.'), Math.min(left - 60000, 2 ** 31 - 1)));
  expiryTimers.push(setTimeout(() => ended({ detail: 'the token expired' }), Math.max(0, Math.min(left, 2 ** 31 - 1))));
}

// ended is called when the API refuses the token (401) or it expires.
function ended(err) {
  if (!auth.user()) return;
  auth.signOut(false);
  leave();
  signInView({ error: `Your sign-in ended: ${err.detail || err.title || 'the token was refused'}. Sign in again.` });
}

function signOut() {
  auth.signOut(true);
  leave();
  signInView({ info: 'You are signed out. The token was removed from this page.' });
}

function leave() {
  expiryTimers.forEach(clearTimeout);
  expiryTimers = [];
  if (view) view.dispose();
  view = null;
  who.hidden = true;
  nav.hidden = true;
  replace(who);
}

function route(moveFocus) {
  if (!auth.user()) return;
  const name = location.hash.replace(/^#\//, '');
  const r = ROUTES[name] || ROUTES.status;
  if (view) view.dispose();
  const u = auth.user();
  view = r.view({ api, tenantId: u.claims.tenantId || '', user: u, announce });
  replace(main, view.el);
  document.title = `${r.title} · tenantcrypt console`;
  for (const a of nav.querySelectorAll('a')) {
    if (a.dataset.route === (ROUTES[name] ? name : 'status')) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (moveFocus) focus(view.focusTarget);
}

window.addEventListener('hashchange', () => {
  // Only "#/…" are views; "#main" is the skip link.
  if (location.hash.startsWith('#/')) route(true);
});

// signInView offers every sign-in this server allows.
function signInView({ error, info, initial } = {}) {
  document.title = 'Sign in · tenantcrypt console';
  const heading = h('h1', { tabindex: '-1' }, 'Sign in');
  const panels = [];

  const sso = sessionInfo.token ? auth.claimsOf(sessionInfo.token) : null;
  if (sessionInfo.token) {
    const btn = h('button', { type: 'button', class: 'primary', 'data-action': 'sso' }, 'Continue with single sign-on');
    const err = h('p', { class: 'field-error', role: 'alert', hidden: true });
    btn.addEventListener('click', async () => {
      btn.disabled = true;
      const again = await fetchSession().catch(() => ({}));
      const t = again.token || sessionInfo.token;
      await attempt(t, 'sso', false, {
        onError: (m) => { err.textContent = m; err.hidden = false; btn.disabled = false; focus(err); },
      });
    });
    panels.push(h('section', { class: 'panel', 'aria-labelledby': 'sso-title' },
      h('h2', { id: 'sso-title' }, 'Single sign-on'),
      h('p', null, 'Your platform’s single sign-on passed a token',
        sso && sso.sub ? [' for ', h('strong', null, sso.sub)] : null,
        sso && sso.tenantId ? [' (tenant ', h('strong', null, sso.tenantId), ')'] : null, '.'),
      btn, err));
  }

  // A pasted token.
  const tokenInput = h('textarea', {
    id: 'token-input', class: 'token', name: 'token', autocomplete: 'off', spellcheck: 'false',
    'aria-describedby': 'token-hint', 'aria-required': 'true',
  });
  const tokenErr = h('p', { class: 'field-error', id: 'token-error', hidden: true, 'data-testid': 'token-error' });
  const remember = h('input', { type: 'checkbox', id: 'token-remember', name: 'remember' });
  const tokenForm = h('form', { class: 'stack', novalidate: true, 'aria-labelledby': 'token-title' },
    h('div', { class: 'field' },
      h('label', { for: 'token-input' }, 'Tenant admin token (JWT)'),
      h('p', { class: 'hint', id: 'token-hint' }, 'Mint one with ', h('code', null, 'tenantcrypt token --role tenant-admin --tenant ID'), ', or take it from your identity provider. It stays in this page; it is sent only to this server’s API.'),
      tokenInput, tokenErr),
    h('div', { class: 'check' }, remember,
      h('label', { for: 'token-remember' }, 'Keep me signed in in this browser tab until it is closed (session storage). Otherwise a reload signs you out.')),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Sign in')));
  tokenForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldError(tokenInput, tokenErr);
    const t = tokenInput.value.trim().replace(/^Bearer\s+/i, '');
    const fail = (m) => { showFieldError(tokenInput, tokenErr, m); tokenInput.focus(); };
    if (!t) return fail('Paste a token.');
    if (!auth.looksLikeJWT(t)) return fail('This is not a JWT: a token has three parts separated by dots.');
    await attempt(t, 'pasted', remember.checked, { onError: fail });
  });
  panels.push(h('section', { class: 'panel', 'aria-labelledby': 'token-title' },
    h('h2', { id: 'token-title' }, 'Sign in with a token'),
    sessionInfo.token ? null : h('p', { class: 'hint' },
      'In production the console sits behind the platform’s single sign-on, which signs you in by itself. No single sign-on token reached this page, so paste a token instead.'),
    tokenForm));

  // A development token.
  if (sessionInfo.devTokens) {
    const tenant = h('input', { id: 'dev-tenant', name: 'tenantId', type: 'text', autocomplete: 'off', spellcheck: 'false', 'aria-required': 'true' });
    const devErr = h('p', { class: 'field-error', id: 'dev-tenant-error', hidden: true });
    const devForm = h('form', { class: 'stack', novalidate: true, 'aria-labelledby': 'dev-title' },
      h('div', { class: 'field' }, h('label', { for: 'dev-tenant' }, 'Tenant id'), tenant, devErr),
      h('div', { class: 'actions' }, h('button', { type: 'submit', 'data-action': 'dev-sign-in' }, 'Sign in with a development token')));
    devForm.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearFieldError(tenant, devErr);
      const fail = (m) => { showFieldError(tenant, devErr, m); tenant.focus(); };
      if (!tenant.value.trim()) return fail('Enter the tenant id.');
      try {
        const { token } = await devToken(tenant.value.trim());
        await attempt(token, 'dev', remember.checked, { onError: fail });
      } catch (err) {
        fail(err.detail || err.text);
      }
    });
    panels.push(h('section', { class: 'panel', 'aria-labelledby': 'dev-title' },
      h('h2', { id: 'dev-title' }, 'Development sign-in'),
      h('p', { class: 'notice notice-warn' }, 'This server runs with --console-dev-tokens: it mints a tenant-admin token for any tenant, for anyone who can reach it. Development only.'),
      devForm));
  }

  replace(main,
    h('div', { class: 'view view-signin' },
      heading,
      h('p', { class: 'lead' }, 'The console shows and manages the encryption of one tenant. It acts with your token, through the same API and the same role checks as any other client: you need a tenant admin’s token.'),
      error ? h('div', { class: 'notice notice-error', role: 'alert', 'data-testid': 'signin-error' }, h('p', null, error)) : null,
      info ? h('div', { class: 'notice notice-info', role: 'status' }, h('p', null, info)) : null,
      h('div', { class: 'signin' }, panels)));
  if (!initial) focus(heading);
}

boot();
