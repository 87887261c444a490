// The tenant's encryption status: lifecycle state, current provider, key
// checks per region, DR compliance, failover, revocation bound. Polled, so
// that a key disabled by its owner shows here within seconds.

import { KP } from './api.js';
import { h, replace, facts, badge, time, relative, duration, plural, tableWrap, formatTime } from './dom.js';
import { migrationPanel } from './migration.js';

const POLL = 3000;

export const STATES = {
  active: {
    title: 'Active', icon: '✓',
    text: 'Encryption and decryption work normally.',
  },
  'key-unavailable': {
    title: 'Key unavailable', icon: '!',
    text: 'The customer managed key is disabled, or its key policy denies tenantcrypt. The tenant’s data cannot be read or written until the key’s owner enables it (or restores access) in AWS KMS; the tenant then becomes active again by itself.',
  },
  locked: {
    title: 'Locked', icon: '■',
    text: 'The customer managed key is scheduled for deletion. The tenant is locked: no data can be read, and key providers cannot be changed, until the key’s owner cancels the deletion and enables the key.',
  },
  destroyed: {
    title: 'Destroyed', icon: '✕',
    text: 'The customer managed key no longer exists. The tenant’s encrypted data cannot be recovered.',
  },
};

const RESULT_KIND = { ok: 'ok', disabled: 'warn', 'access-denied': 'warn', 'pending-deletion': 'bad', 'not-found': 'bad', throttled: 'warn', unavailable: 'warn', error: 'warn' };

export function statusView(ctx) {
  const heading = h('h1', { tabindex: '-1' }, 'Encryption status');
  const updated = h('span', { 'data-testid': 'status-updated' }, '');
  const refreshBtn = h('button', { type: 'button', onclick: () => refresh(true) }, 'Refresh');
  // The tenant's state first, then a running migration, then the details.
  const stateBox = h('div', { 'data-testid': 'status-state' });
  const body = h('div', { 'data-testid': 'status-body', 'aria-busy': 'true' }, h('p', { class: 'loading' }, 'Loading the encryption status…'));
  let names = new Map(); // fingerprint or ARN → provider name
  const nameOf = (arnOrFp) => names.get(arnOrFp);
  const migration = migrationPanel(ctx, { names: nameOf, onChange: () => { loadNames(); refresh(); } });
  const el = h('div', { class: 'view view-status' },
    h('div', { class: 'page-head' }, heading, h('div', { class: 'page-tools' }, updated, refreshBtn)),
    stateBox,
    migration.el,
    body);
  let timer = 0;
  let disposed = false;
  let inflight = null;

  async function loadNames() {
    try {
      const { data } = await ctx.api.get(`${KP}/actions/list`);
      const m = new Map();
      for (const p of data || []) {
        m.set(p.arnFingerPrint, p.name);
        m.set(p.arn, p.name);
      }
      names = m;
      migration.relabel();
    } catch { /* names are a nicety; the status stands without them */ }
  }

  async function refresh(byUser) {
    if (disposed) return;
    clearTimeout(timer);
    if (inflight) return inflight;
    inflight = (async () => {
      try {
        const { data } = await ctx.api.get('/api/v1/encryption/status');
        if (disposed) return;
        const [state, details] = render(data, nameOf);
        replace(stateBox, state);
        replace(body, details);
        updated.textContent = `Updated ${formatTime(new Date())}`;
        if (byUser) ctx.announce('Status refreshed.');
      } catch (err) {
        if (disposed || err.status === 401) return;
        stateBox.replaceChildren();
        replace(body, errorState(err));
      } finally {
        body.setAttribute('aria-busy', 'false');
        inflight = null;
        if (!disposed) timer = setTimeout(tick, POLL);
      }
    })();
    return inflight;
  }

  function tick() {
    if (document.hidden) timer = setTimeout(tick, POLL);
    else refresh();
  }

  loadNames().then(() => refresh());
  return {
    el,
    focusTarget: heading,
    dispose() {
      disposed = true;
      clearTimeout(timer);
      migration.dispose();
    },
  };
}

function errorState(err) {
  if (err.code === 'Encryption-07') {
    return h('div', { class: 'notice notice-error', role: 'alert' },
      h('p', null, h('strong', null, 'This tenant does not exist. '), 'The token names a tenant that was never created, or was deleted. Sign in with a token for an existing tenant.'));
  }
  return h('div', { class: 'notice notice-error', role: 'alert' },
    h('p', null, h('strong', null, 'The status could not be loaded. '), err.text),
    err.requestId ? h('p', { class: 'hint' }, `Request id ${err.requestId} (quote it to the operator). Retrying every few seconds.`) : null);
}

function render(st, nameOf) {
  const state = STATES[st.state] || { title: st.state, icon: '?', text: '' };
  const kmip = st.currentProvider && st.currentProvider.keyprovider === 'KMIP';
  const cmk = kmip || (st.currentProvider && st.currentProvider.keyprovider === 'AWS-KMS');
  const out = [];
  const details = [];

  out.push(h('section', { class: `state state-${st.state}`, 'data-testid': 'tenant-state', 'data-state': st.state, 'aria-labelledby': 'state-title' },
    h('span', { class: 'state-icon', 'aria-hidden': 'true' }, state.icon),
    h('div', null,
      h('h2', { id: 'state-title' }, `Tenant ${st.tenantId}: ${state.title}`),
      h('p', null, state.text),
      st.stateReason ? h('p', { 'data-testid': 'state-reason' }, h('strong', null, 'Why: '), st.stateReason) : null,
      st.stateChangedAt ? h('p', null, 'Since ', time(st.stateChangedAt), ` (${relative(st.stateChangedAt)}).`) : null)));

  if (st.degraded) {
    out.push(h('section', { class: 'state state-degraded', 'data-testid': 'degraded' },
      h('span', { class: 'state-icon', 'aria-hidden': 'true' }, '!'),
      h('div', null, h('h2', null, 'Degraded'), h('p', null, st.degradedReason || 'AWS KMS could not be reached.'))));
  }
  if (st.failover) {
    out.push(h('div', { class: 'notice notice-warn', 'data-testid': 'failover' },
      h('p', null, h('strong', null, 'Failover active: '),
        `AWS KMS in ${st.failover.from} is unreachable since `, time(st.failover.since),
        `; the key’s calls go to its replica in ${st.failover.to} until the region answers again.`)));
  }

  const p = st.currentProvider || {};
  const providerName = cmk ? nameOf(p.arnFingerPrint) : null;
  const sections = h('div', { class: 'sections' });
  const grid = h('div', { class: 'grid' });
  sections.append(h('section', { class: 'panel', 'aria-labelledby': 'provider-title', 'data-testid': 'current-provider' },
    h('h2', { id: 'provider-title' }, 'Current key provider'),
    facts([
      ['Provider', cmk ? [kmip ? 'Key in your KMIP key manager' : 'AWS KMS customer managed key', providerName ? [' “', providerName, '”'] : null] : 'Internal KMS (default provider)'],
      [kmip ? 'Key URI' : 'Key ARN', cmk ? h('code', null, p.arn || '(unknown)') : null],
      ['Fingerprint', h('code', null, p.arnFingerPrint || '')],
      ['Ciphertext prefix', h('code', null, p.prefix || '')],
      ['Key state', keyStateBadge(st.keyState)],
    ])));

  grid.append(h('section', { class: 'panel', 'aria-labelledby': 'dr-title', 'data-testid': 'dr' },
    h('h2', { id: 'dr-title' }, 'Disaster recovery'),
    cmk ? facts([
      ['DR compliance', st.drCompliant === undefined ? 'not tested yet'
        : st.drCompliant ? badge('Compliant', 'ok', { 'data-testid': 'dr-compliant' })
          : badge('Not compliant', 'bad', { 'data-testid': 'dr-compliant' })],
      ['Why not', st.complianceError && st.complianceError.message
        ? `${st.complianceError.message} (${[st.complianceError.region, st.complianceError.code].filter(Boolean).join(', ')})` : null],
      ['Failover', kmip ? 'the servers of your KMIP cluster are tried in turn' : st.failover ? badge(`to ${st.failover.to}`, 'warn') : 'none: the key’s own region answers'],
    ]) : h('p', null, 'The internal KMS is part of tenantcrypt; it has no DR region of its own.')));

  grid.append(h('section', { class: 'panel', 'aria-labelledby': 'revocation-title', 'data-testid': 'revocation' },
    h('h2', { id: 'revocation-title' }, 'Revocation'),
    facts([
      ['Revocation bound', h('span', { 'data-testid': 'revocation-bound' }, duration(st.revocationBound))],
      ['Key checked', cmk && st.keyCheckInterval ? `every ${duration(st.keyCheckInterval)}, in every region` : null],
    ]),
    h('p', { class: 'hint' }, kmip
      ? `When the key’s owner revokes the key (final: KMIP cannot re-activate it) or withdraws tenantcrypt’s access (reversible), no data key of this tenant stays usable for longer than ${duration(st.revocationBound)}, on every replica of the service.`
      : cmk
      ? `When the key’s owner disables the key, no data key of this tenant stays usable for longer than ${duration(st.revocationBound)}, on every replica of the service.`
      : 'Applies once the tenant is on a customer managed key: a disabled key stops the tenant within this bound.')));

  const checks = st.lastCheck && st.lastCheck.regions && st.lastCheck.regions.length ? st.lastCheck.regions : (st.lastCheck ? [st.lastCheck] : []);
  const checksPanel = h('section', { class: 'panel', 'aria-labelledby': 'checks-title', 'data-testid': 'key-checks' },
    h('h2', { id: 'checks-title' }, 'Last key check per region'));
  if (!cmk) {
    checksPanel.append(h('p', { class: 'empty' }, 'The internal KMS is not checked from outside: it is part of tenantcrypt. Checks start when the tenant uses a customer managed key.'));
  } else if (checks.length === 0) {
    checksPanel.append(h('p', { class: 'empty' }, 'Not checked yet: the first check runs within the check interval.'));
  } else {
    checksPanel.append(tableWrap(h('table', null,
      h('thead', null, h('tr', null, ['Region', 'Result', 'Key state', 'Checked', 'Detail'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, checks.map((c) => h('tr', { 'data-region': c.region },
        h('th', { scope: 'row' }, c.region || ''),
        h('td', null, badge(c.result, RESULT_KIND[c.result] || 'info')),
        h('td', null, c.keyState || ''),
        h('td', null, time(c.time)),
        h('td', { class: 'wrap' }, c.detail || ''))))), 'Key checks per region'));
  }
  sections.append(grid, checksPanel);

  const keys = Object.entries(st.cipherKeys || {});
  const total = keys.reduce((n, [, c]) => n + c, 0);
  sections.append(h('section', { class: 'panel', 'aria-labelledby': 'datakeys-title', 'data-testid': 'datakeys' },
    h('h2', { id: 'datakeys-title' }, 'Stored data keys'),
    keys.length === 0
      ? h('p', { class: 'empty' }, 'No data keys yet: the first is made when a service of the tenant encrypts.')
      : [h('p', null, `${plural(total, 'data key')}, stored only in wrapped form, by the provider that wraps them:`),
        tableWrap(h('table', null,
          h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Wrapped by'), h('th', { scope: 'col' }, 'Data keys'))),
          h('tbody', null, keys.map(([ref, n]) => h('tr', null,
            h('td', { class: 'wrap' }, refLabel(ref, nameOf)),
            h('td', null, n.toLocaleString()))))), 'Data keys by provider')]));
  details.push(sections);
  return [out, details];
}

function refLabel(ref, nameOf) {
  if (ref === 'internal') return 'Internal KMS (default provider)';
  const fp = ref.startsWith('cmk:') ? ref.slice(4) : ref;
  const name = nameOf(fp);
  return name ? `“${name}” (${fp})` : fp;
}

function keyStateBadge(s) {
  // AWS KMS states, and KMIP's (Active, Deactivated, Compromised, ...).
  const kind = s === 'Enabled' || s === 'Active' ? 'ok' : s === 'Unknown' ? 'info'
    : ['PendingDeletion', 'Destroyed', 'Deactivated', 'Compromised', 'Destroyed Compromised'].includes(s) ? 'bad' : 'warn';
  return badge(s || 'Unknown', kind, { 'data-testid': 'key-state' });
}
