// The tenant's audit log: events with filters, newest first, and the
// server's verification of the hash chain and its signed checkpoints.

import { h, replace, facts, badge, time, focus, plural, tableWrap } from './dom.js';
import { showFieldError, clearFieldError } from './dialog.js';

const PAGE = 500; // events per API request
const MAX_EVENTS = 5000; // most events loaded for one filter
const SHOW_STEP = 100; // rows added by "Show more"

const ACTIONS = [
  ['keyprovider.', 'every key-provider action'],
  ['keyprovider.register', ''], ['keyprovider.test', ''], ['keyprovider.migrate', ''],
  ['keyprovider.reset-to-default-provider', ''], ['keyprovider.update', ''], ['keyprovider.delete', ''],
  ['tenant.', 'tenant changes and lifecycle states'], ['tenant.state', 'lifecycle state changes'],
  ['kms.', 'every call to AWS KMS'], ['kms.DescribeKey', ''], ['kms.GenerateDataKey', ''], ['kms.Encrypt', ''], ['kms.Decrypt', ''],
  ['dataplane.', 'data-plane use (counts per minute)'], ['datakey.rotate', 'data-key rotations'],
];

const RESULT_KIND = { success: 'ok', failure: 'bad', denied: 'warn' };

export function auditView(ctx) {
  const heading = h('h1', { tabindex: '-1' }, 'Audit log');

  // Verification.
  const verifyResult = h('div', { class: 'result', 'data-testid': 'verify-result' });
  const verifyBtn = h('button', { type: 'button', class: 'primary', 'data-action': 'verify', onclick: () => verify() }, 'Verify the audit log');
  const verifySection = h('section', { 'aria-labelledby': 'verify-title', class: 'panel' },
    h('h2', { id: 'verify-title' }, 'Verify the chain'),
    h('p', null, 'Every event carries the hash of the one before it, and the server signs the chain regularly with a key kept outside the database. ',
      'Verification checks every link and signature: an event changed, removed, inserted or reordered shows as a problem. ',
      'For a check that does not trust this server, export the log and verify it offline (docs/api.md, “Offline verification”).'),
    h('div', { class: 'actions' }, verifyBtn),
    verifyResult);

  async function verify() {
    verifyBtn.disabled = true;
    replace(verifyResult, h('p', { class: 'hint', role: 'status' }, 'Verifying the chain…'));
    try {
      const { data } = await ctx.api.get('/api/v1/audits/actions/verify');
      replace(verifyResult, verification(data));
      ctx.announce(data.valid ? 'The audit log verifies.' : 'The audit log does NOT verify.');
    } catch (err) {
      if (err.status === 401) return;
      replace(verifyResult, h('div', { class: 'notice notice-error', role: 'alert' },
        h('p', null, h('strong', null, 'The verification could not be run. '), err.text)));
    } finally {
      verifyBtn.disabled = false;
      focus(verifyResult.firstElementChild);
    }
  }

  // Filters.
  const listId = 'audit-actions';
  const inputs = {
    action: h('input', { id: 'f-action', name: 'action', type: 'text', list: listId, autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'f-action-hint' }),
    principal: h('input', { id: 'f-principal', name: 'principal', type: 'text', autocomplete: 'off', spellcheck: 'false' }),
    result: h('select', { id: 'f-result', name: 'result' },
      h('option', { value: '' }, 'Any'), h('option', { value: 'success' }, 'Success'),
      h('option', { value: 'failure' }, 'Failure'), h('option', { value: 'denied' }, 'Denied')),
    from: h('input', { id: 'f-from', name: 'from', type: 'datetime-local', step: '1', value: localInput(new Date(Date.now() - 3600 * 1000)) }),
    to: h('input', { id: 'f-to', name: 'to', type: 'datetime-local', step: '1' }),
  };
  const errors = Object.fromEntries(Object.keys(inputs).map((k) => [k, h('p', { class: 'field-error', id: `f-${k}-error`, hidden: true })]));
  const field = (name, label, hint) => h('div', { class: 'field' },
    h('label', { for: inputs[name].id }, label), inputs[name],
    hint ? h('p', { class: 'hint', id: `f-${name}-hint` }, hint) : null, errors[name]);
  const form = h('form', { novalidate: true, 'aria-label': 'Filter the events' },
    h('fieldset', { class: 'filters' },
      h('legend', null, 'Filters'),
      field('action', 'Action', 'Exact, or a prefix ending in “.”'),
      field('principal', 'Principal (token subject)'),
      field('result', 'Result'),
      field('from', 'From (your time zone)'),
      field('to', 'Until (your time zone)'),
      h('div', { class: 'actions' },
        h('button', { type: 'submit', class: 'primary' }, 'Apply filters'),
        h('button', { type: 'button', onclick: () => { clear(); load(true); } }, 'Clear'))),
    h('datalist', { id: listId }, ACTIONS.map(([v, label]) => h('option', { value: v }, label))));
  form.addEventListener('submit', (e) => { e.preventDefault(); load(true); });

  function clear() {
    inputs.action.value = '';
    inputs.principal.value = '';
    inputs.result.value = '';
    inputs.from.value = '';
    inputs.to.value = '';
  }

  // Events.
  const summary = h('p', { 'data-testid': 'audit-summary', role: 'status', 'aria-live': 'polite' });
  const table = h('div', { 'data-testid': 'audit-events', 'aria-busy': 'true' }, h('p', { class: 'loading' }, 'Loading events…'));
  const more = h('button', { type: 'button', hidden: true, onclick: () => showMore() }, 'Show more');
  const eventsHeading = h('h2', { id: 'events-title', tabindex: '-1' }, 'Events');
  let events = [];
  let shown = 0;
  let capped = false;
  let generation = 0;
  let disposed = false;

  async function load(byUser) {
    for (const k of Object.keys(inputs)) clearFieldError(inputs[k], errors[k]);
    const query = { limit: PAGE };
    for (const k of ['action', 'principal', 'result']) query[k] = inputs[k].value.trim();
    for (const k of ['from', 'to']) {
      if (!inputs[k].value) continue;
      const d = new Date(inputs[k].value);
      if (Number.isNaN(d.getTime())) {
        showFieldError(inputs[k], errors[k], 'Enter a date and time.');
        inputs[k].focus();
        return;
      }
      query[k] = d.toISOString();
    }
    const gen = ++generation;
    table.setAttribute('aria-busy', 'true');
    summary.textContent = 'Loading events…';
    const loaded = [];
    capped = false;
    try {
      let cursor = '';
      do {
        const { data } = await ctx.api.get('/api/v1/audits', { ...query, cursor });
        if (gen !== generation || disposed) return;
        loaded.push(...(data.items || []));
        cursor = data.next || '';
        if (loaded.length >= MAX_EVENTS && cursor) {
          capped = true;
          break;
        }
      } while (cursor);
    } catch (err) {
      if (gen !== generation || disposed || err.status === 401) return;
      table.setAttribute('aria-busy', 'false');
      const param = err.field;
      if (param && inputs[param]) {
        showFieldError(inputs[param], errors[param], err.detail || err.text);
        inputs[param].focus();
        summary.textContent = 'The filter was refused.';
      } else {
        summary.textContent = '';
        replace(table, h('div', { class: 'notice notice-error', role: 'alert' },
          h('p', null, h('strong', null, 'The audit log could not be loaded. '), err.text)));
      }
      return;
    }
    // Newest first: the API pages in chain order, oldest first.
    events = loaded.sort((a, b) => b.seq - a.seq);
    shown = Math.min(SHOW_STEP, events.length);
    render();
    table.setAttribute('aria-busy', 'false');
    if (byUser) focus(eventsHeading);
  }

  function render() {
    if (events.length === 0) {
      summary.textContent = '';
      replace(table, h('p', { class: 'empty', 'data-testid': 'audit-empty' }, 'No events match these filters. Widen the time range or clear the filters.'));
      more.hidden = true;
      return;
    }
    summary.textContent = `${capped ? `The newest ${plural(events.length, 'event')} of more` : plural(events.length, 'event')} match; showing the newest ${shown}.` +
      (capped ? ' Narrow the filters to see older ones.' : '');
    replace(table, tableWrap(h('table', null,
      h('thead', null, h('tr', null, ['Seq', 'Time', 'Action', 'Result', 'Principal', 'Target', 'Details'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, events.slice(0, shown).map(row))), 'Audit events'));
    more.hidden = shown >= events.length;
  }

  function showMore() {
    const first = shown;
    shown = Math.min(shown + SHOW_STEP, events.length);
    render();
    // Continue where the reader was: the first new row.
    const rows = table.querySelectorAll('tbody tr');
    if (rows[first]) focus(rows[first].querySelector('th'));
  }

  const el = h('div', { class: 'view view-audit' },
    h('div', { class: 'page-head' }, heading),
    h('p', { class: 'lead' }, `What was done with tenant ${ctx.tenantId}’s keys, by whom and when: admin actions, lifecycle changes, every call to AWS KMS, data-plane use. Events never hold keys, plaintexts or tokens.`),
    verifySection,
    h('section', { 'aria-labelledby': 'events-title' }, eventsHeading, form, summary, table, h('div', { class: 'actions' }, more)));

  load(false);
  return {
    el,
    focusTarget: heading,
    dispose() { disposed = true; generation += 1; },
  };
}

function row(e) {
  const details = Object.entries(e.details || {}).sort(([a], [b]) => a.localeCompare(b));
  return h('tr', { 'data-action': e.action, 'data-seq': String(e.seq) },
    h('th', { scope: 'row' }, String(e.seq)),
    h('td', null, time(e.time)),
    h('td', null, h('code', null, e.action)),
    h('td', null, badge(e.result, RESULT_KIND[e.result] || 'info'), e.errorCode ? [' ', h('code', null, e.errorCode)] : null),
    h('td', { class: 'wrap' }, e.principal || h('span', { class: 'hint' }, 'tenantcrypt')),
    h('td', { class: 'wrap' }, e.target ? h('code', null, e.target) : ''),
    h('td', { class: 'wrap' },
      details.map(([k, v]) => h('div', null, `${k}: `, h('code', null, v))),
      e.requestId ? h('div', { class: 'hint' }, `request ${e.requestId}`) : null,
      e.sourceAddress ? h('div', { class: 'hint' }, `from ${e.sourceAddress}`) : null));
}

// verification renders the server's verdict on the chain.
function verification(v) {
  const body = facts([
    ['Chain', h('code', null, v.chainId)],
    ['Events verified', v.events === 0 ? 'none (the chain is empty)' : `${v.events.toLocaleString()} (seq ${v.firstSeq} to ${v.lastSeq})`],
    ['Signed checkpoints', v.checkpoints === 0 ? 'none yet' : `${v.checkpoints.toLocaleString()}, the newest at seq ${v.lastCheckpointSeq}`],
    ['Not yet signed', v.unsignedTail > 0 ? `${plural(v.unsignedTail, 'newest event')}: chained, and signed at the next checkpoint (within about 90 seconds)` : 'none'],
    ['Checked', time(new Date().toISOString())],
  ]);
  if (v.valid) {
    return h('div', { class: 'notice notice-ok', 'data-testid': 'verify-verdict', 'data-valid': 'true' },
      h('p', null, h('strong', null, 'Verified: the audit log is intact. '), 'Every event links to the one before it, and every signature checks out.'),
      body);
  }
  const p = v.problem || {};
  return h('div', { class: 'notice notice-error', 'data-testid': 'verify-verdict', 'data-valid': 'false' },
    h('p', null, h('strong', null, 'The audit log does NOT verify. '), p.seq ? `At event ${p.seq}: ` : '', p.reason || 'unknown problem'),
    body,
    h('p', null, 'Keep an export of the log and report this to the operator: see “Problems and what they mean” in docs/api.md.'));
}

// localInput formats a date for <input type="datetime-local"> (local time).
function localInput(d) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

