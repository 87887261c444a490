// The console's API client: the same public API and error envelope as any
// other client, with the signed-in user's bearer token.

// ApiError is a failed call: its HTTP status and the first error of the
// envelope ({code, title, detail, meta}), or a network failure (status 0).
export class ApiError extends Error {
  constructor(status, err, requestId, retryAfter) {
    const e = err || {};
    super(e.detail || e.title || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || '';
    this.title = e.title || (status === 0 ? 'Network error' : `HTTP ${status}`);
    this.detail = e.detail || '';
    this.meta = e.meta || {};
    this.requestId = requestId || '';
    this.retryAfter = retryAfter || '';
  }

  // field is the request body field or query parameter the error names.
  get field() {
    return this.meta.field || this.meta.parameter || '';
  }

  // text is a sentence for people: detail, else title, with the code.
  get text() {
    const what = this.detail ? `${this.title}: ${this.detail}` : this.title;
    return this.code ? `${what} (${this.code})` : what;
  }
}

export const KP = '/api/v1/encryption/keyproviders';

// createClient returns {get, post, patch, del}; each resolves to
// {status, data, requestId} or rejects with an ApiError. onUnauthorized is
// called on every 401 (the token expired or was refused).
export function createClient({ token, onUnauthorized }) {
  async function request(method, path, { body, query } = {}) {
    let url = path;
    if (query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) {
        if (v !== undefined && v !== null && v !== '') q.set(k, v);
      }
      const s = q.toString();
      if (s) url += `?${s}`;
    }
    const headers = { Accept: 'application/json' };
    const t = token();
    if (t) headers.Authorization = `Bearer ${t}`;
    let payload;
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(url, { method, headers, body: payload, cache: 'no-store', credentials: 'same-origin', redirect: 'error' });
    } catch (e) {
      throw new ApiError(0, { title: 'Network error', detail: 'the server could not be reached; check your connection and try again' });
    }
    const requestId = res.headers.get('X-Request-Id') || '';
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch { data = null; }
    }
    if (!res.ok) {
      const first = data && Array.isArray(data.errors) ? data.errors[0] : null;
      const err = new ApiError(res.status, first, requestId, res.headers.get('Retry-After'));
      if (res.status === 401 && onUnauthorized) onUnauthorized(err);
      throw err;
    }
    return { status: res.status, data, requestId };
  }
  return {
    get: (path, query) => request('GET', path, { query }),
    post: (path, body) => request('POST', path, { body }),
    patch: (path, body) => request('PATCH', path, { body }),
    del: (path) => request('DELETE', path),
  };
}

// session asks the console for the token the SSO proxy passed, and whether
// development tokens are on.
export async function session() {
  const res = await fetch('/console/session', { cache: 'no-store', credentials: 'same-origin' });
  if (!res.ok) return { devTokens: false };
  return res.json();
}

// devToken mints a tenant-admin token (development mode only).
export async function devToken(tenantId) {
  let res;
  try {
    res = await fetch('/console/dev-token', {
      method: 'POST', cache: 'no-store', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ tenantId }),
    });
  } catch {
    throw new ApiError(0, { title: 'Network error', detail: 'the server could not be reached' });
  }
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    throw new ApiError(res.status, data && data.errors ? data.errors[0] : null, res.headers.get('X-Request-Id'));
  }
  return data;
}
