// The migration panel: the tenant's running (or just finished) provider
// migration with a live progress bar, polled from
// GET …/keyproviders/migration/actions/details.
//
// That endpoint answers 404 while the tenant never migrated (the Qlik API's
// contract), so until a migration is known the panel polls the provider
// list instead and asks for the details only once it shows that one ran:
// no failed request in the browser's console, no 404 in the server's log.

import { KP } from './api.js';
import { h, replace, time, announce, id, NEVER } from './dom.js';

const DEFAULT_ARN = '#QLIK_MANAGED_KEY_PROVIDER#';
const RUNNING_POLL = 500; // ms between polls while a migration runs
const IDLE_POLL = 5000; // ms between polls otherwise (one may start elsewhere)
const RECENT = 2 * 60 * 1000; // a migration completed this recently is shown

// providerLabel names a migration end for people.
export function providerLabel(arn, names) {
  if (!arn || arn === DEFAULT_ARN) return 'the internal KMS (default provider)';
  const name = names && names(arn);
  return name ? `“${name}”` : arn;
}

// migrationPanel returns {el, ready, refresh, dispose, running()}. names(arn)
// gives a provider's display name; onChange(migration, previous) is called
// whenever the migration's state changes (e.g. to reload a list).
export function migrationPanel(ctx, { names, onChange } = {}) {
  const el = h('div', { class: 'migration-slot', 'data-testid': 'migration-slot' });
  let last = null; // the migration as last seen
  let watched = new Set(); // ids seen running on this page
  let timer = 0;
  let disposed = false;
  let parts = null; // the rendered panel's live parts
  let known = false; // a migration exists: its details can be read
  let polled = false; // the first poll has answered
  let markReady;
  // ready resolves once the first poll has answered, so that a page can
  // lay itself out with the panel in place instead of jumping when it
  // appears (a click aimed at a button below it would land elsewhere).
  const ready = new Promise((resolve) => { markReady = resolve; });

  async function poll() {
    clearTimeout(timer);
    if (disposed) return;
    let m = null;
    try {
      if (!known) known = await everMigrated();
      if (disposed) return;
      if (known) {
        const res = await ctx.api.get(`${KP}/migration/actions/details`);
        m = res.data;
      }
    } catch (err) {
      if (err.status !== 404) {
        if (err.status !== 401) renderError(err);
        polled = true;
        markReady();
        schedule(IDLE_POLL);
        return;
      }
      known = false; // the provider list misled us; ask it again next time
    }
    if (disposed) return;
    const prev = last;
    last = m;
    render(m, prev);
    // Only a change seen after the first poll (the page waits for that one
    // through ready): a tenant with no migration polls quietly.
    if (onChange && polled && key(prev) !== key(m)) onChange(m, prev);
    polled = true;
    markReady();
    schedule(isRunning(m) ? RUNNING_POLL : IDLE_POLL);
  }

  // everMigrated tells from the provider list whether the tenant has a
  // migration to show: a customer managed key became current (a migration
  // to it started) or was ever promoted or demoted (one completed). A key
  // deleted after a reset to the default provider takes its history along:
  // the panel then shows nothing, as for a tenant that never migrated.
  async function everMigrated() {
    const { data } = await ctx.api.get(`${KP}/actions/list`);
    return (data || []).some((p) => p.keyprovider !== 'Qlik' && (p.current ||
      (p.promotedToCurrentAt && p.promotedToCurrentAt !== NEVER) ||
      (p.demotedFromCurrentAt && p.demotedFromCurrentAt !== NEVER)));
  }

  function schedule(ms) {
    if (disposed) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (document.hidden) schedule(ms);
      else poll();
    }, ms);
  }

  function renderError(err) {
    parts = null;
    replace(el, h('p', { class: 'notice notice-warn' }, `The migration's progress could not be read: ${err.text}. Retrying.`));
  }

  function render(m, prev) {
    if (!m) {
      parts = null;
      el.replaceChildren();
      return;
    }
    const running = isRunning(m);
    if (running) watched.add(m.id);
    const completedRecently = m.state === 'Completed' &&
      (watched.has(m.id) || Date.now() - new Date(m.completedAt).getTime() < RECENT);
    if (!running && !completedRecently) {
      parts = null;
      replace(el, h('p', { class: 'hint', 'data-testid': 'last-migration' },
        'Last migration: to ', providerLabel(m.migratingTo, names), ', completed ', time(m.completedAt), '.'));
      return;
    }
    const progress = running ? Math.min(100, Math.max(0, Number(m.progress) || 0)) : 100;
    // Same migration, same state: update the numbers in place, so that
    // assistive technology is not flooded and focus is never lost.
    if (parts && parts.id === m.id && parts.state === m.state) {
      parts.bar.value = progress;
      parts.bar.setAttribute('aria-valuetext', `${fmt(progress)} percent`);
      parts.value.textContent = `${fmt(progress)} %`;
      parts.error.hidden = !m.error;
      parts.error.textContent = m.error ? `The last batch failed and is being retried: ${m.error}` : '';
      return;
    }
    const headingId = id('migration-heading');
    const bar = h('progress', { id: 'migration-progress', max: '100', value: String(progress), 'aria-labelledby': headingId,
      'aria-valuetext': `${fmt(progress)} percent`, 'data-state': m.state });
    const value = h('span', { class: 'progress-value', 'data-testid': 'migration-percent' }, `${fmt(progress)} %`);
    const error = h('p', { class: 'notice notice-warn', hidden: !m.error },
      m.error ? `The last batch failed and is being retried: ${m.error}` : '');
    const to = providerLabel(m.migratingTo, names);
    const from = providerLabel(m.migratingFrom, names);
    const section = h('section', { class: running ? 'migration' : 'migration done', 'aria-labelledby': headingId, 'data-testid': 'migration', 'data-state': m.state, 'data-id': m.id },
      h('h2', { id: headingId, tabindex: '-1' }, running ? 'Migration in progress' : 'Migration completed'),
      h('p', null, running
        ? ['Moving the tenant’s data keys from ', from, ' to ', to, '. New data keys are already wrapped by ', to,
          '; the existing ones are rewrapped in the background. The tenant keeps working, and ciphertexts do not change.']
        : ['Every data key of the tenant is now wrapped by ', to, '. Completed ', time(m.completedAt), '.']),
      h('div', { class: 'progress-row' }, bar, value),
      h('p', { class: 'hint' }, 'Started ', time(m.initiatedAt), ` · migration ${m.id}`),
      error);
    // Keep the keyboard user's place when the panel changes (New →
    // InProgress → Completed).
    const hadFocus = el.contains(document.activeElement);
    replace(el, section);
    parts = { id: m.id, state: m.state, bar, value, error, heading: section.querySelector('h2') };
    if (hadFocus) parts.heading.focus();
    if (running && (!prev || prev.id !== m.id)) announce(`Migration to ${to} started.`);
    if (!running && prev && prev.id === m.id && isRunning(prev)) announce(`Migration to ${to} completed.`);
  }

  poll();
  return {
    el,
    ready,
    // refresh reads the migration now, e.g. right after this page started
    // one (whose details then exist).
    refresh() {
      known = true;
      return poll();
    },
    running: () => isRunning(last),
    current: () => last,
    heading: () => (parts ? parts.heading : null),
    // relabel renders the panel again, e.g. once the providers' names are
    // known.
    relabel() {
      if (!last) return;
      const hadFocus = parts && parts.heading === document.activeElement;
      parts = null;
      render(last, last);
      if (hadFocus && parts) parts.heading.focus();
    },
    dispose() {
      disposed = true;
      clearTimeout(timer);
      watched = new Set();
    },
  };
}

function key(m) {
  return m ? `${m.id}/${m.state}` : '';
}

export function isRunning(m) {
  return !!m && (m.state === 'New' || m.state === 'InProgress');
}

function fmt(p) {
  return Number.isInteger(p) ? String(p) : p.toFixed(2).replace(/0$/, '');
}
