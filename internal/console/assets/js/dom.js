// Small DOM helpers. Every text the console shows from the server goes
// through textContent (never innerHTML), so names, reasons and audit
// details can never become markup.

// h creates an element: h('p', {class: 'x', onclick: fn}, 'text', child, ...).
// Attributes that are null, undefined or false are left out; true sets an
// empty attribute; "on…" functions become event listeners.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value' && (tag === 'input' || tag === 'textarea' || tag === 'select')) el.value = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

// append adds children (nodes, strings, numbers, arrays; null is skipped).
export function append(el, children) {
  for (const c of [children].flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

// replace makes children the only content of el.
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let uid = 0;
// id returns a document-unique id with the given prefix.
export function id(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

// announce tells screen reader users what just happened (polite).
export function announce(text) {
  const el = document.getElementById('announcer');
  if (!el) return;
  el.textContent = '';
  // A new text node after a tick is announced even when it repeats.
  setTimeout(() => { el.textContent = text; }, 30);
}

// focus moves the focus to el (made focusable if it is not) and scrolls it
// into view.
export function focus(el) {
  if (!el) return;
  if (!el.hasAttribute('tabindex') && !/^(A|BUTTON|INPUT|SELECT|TEXTAREA)$/.test(el.tagName)) {
    el.setAttribute('tabindex', '-1');
  }
  el.focus({ preventScroll: true });
  el.scrollIntoView({ block: 'nearest' });
}

// facts renders a definition list of [term, value] pairs (skipping pairs
// whose value is null or undefined).
export function facts(pairs, attrs) {
  const dl = h('dl', { class: 'facts', ...attrs });
  for (const [term, value] of pairs) {
    if (value === null || value === undefined) continue;
    dl.append(h('dt', null, term), h('dd', null, value));
  }
  return dl;
}

export function badge(text, kind, attrs) {
  return h('span', { class: `badge badge-${kind}`, ...attrs }, text);
}

// The API's "never" time.
export const NEVER = '0001-01-01T00:00:00Z';

// time formats an RFC 3339 time for people, in the browser's time zone,
// with the exact UTC value as the element's title and datetime.
export function time(iso) {
  if (!iso || iso === NEVER) return h('span', null, 'never');
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return h('span', null, iso);
  return h('time', { datetime: d.toISOString(), title: d.toISOString() }, formatTime(d));
}

export function formatTime(d) {
  return d.toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

// relative says how long ago a time was, roughly ("12 s ago").
export function relative(iso) {
  const d = new Date(iso);
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  if (Number.isNaN(s)) return '';
  if (s < 2) return 'just now';
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

// duration turns a Go duration ("10s", "1m30s", "500ms") into words.
export function duration(go) {
  if (!go) return '';
  const m = /^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:([\d.]+)s)?(?:([\d.]+)ms)?$/.exec(go);
  if (!m) return go;
  const parts = [];
  if (m[1]) parts.push(`${m[1]} h`);
  if (m[2]) parts.push(`${m[2]} min`);
  if (m[3]) parts.push(`${m[3]} s`);
  if (m[4]) parts.push(`${m[4]} ms`);
  return parts.join(' ') || go;
}

// plural: plural(3, 'data key') → "3 data keys".
export function plural(n, word, many) {
  return `${n.toLocaleString()} ${n === 1 ? word : (many || `${word}s`)}`;
}

// tableWrap puts a table in a box that scrolls sideways on narrow screens
// and can be scrolled with the keyboard.
export function tableWrap(table, label) {
  return h('div', { class: 'table-wrap', role: 'region', 'aria-label': label, tabindex: '0' }, table);
}
