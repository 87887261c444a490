// Key providers: the list with every field, register (with the server's
// validation messages next to the field), test, migrate, reset to the
// default provider, rename and delete, and the live migration progress.

import { KP } from './api.js';
import { h, replace, facts, badge, time, id, focus, plural, duration } from './dom.js';
import { confirm, formDialog, showFieldError, clearFieldError } from './dialog.js';
import { migrationPanel, isRunning } from './migration.js';

// Register errors that concern the ARN although the API names no field.
const ARN_CODES = new Set(['Encryption-31', 'Encryption-33', 'Encryption-34', 'Encryption-35']);

export function providersView(ctx) {
  const heading = h('h1', { tabindex: '-1' }, 'Key providers');
  const listHeading = h('h2', { id: 'providers-title', tabindex: '-1' }, 'Providers');
  const list = h('div', { class: 'providers', 'data-testid': 'providers', 'aria-busy': 'true' },
    h('p', { class: 'loading' }, 'Loading the key providers…'));
  let providers = [];
  const results = new Map(); // fingerprint → the nodes of the last action’s result in its card
  let disposed = false;
  const nameOf = (arn) => {
    const p = providers.find((x) => x.arn === arn || x.arnFingerPrint === arn);
    return p ? p.name : null;
  };
  const migration = migrationPanel(ctx, {
    names: nameOf,
    onChange: () => load(),
  });
  const form = registerForm(ctx, {
    onRegistered: async (p) => {
      results.set(p.arnFingerPrint, complianceResult(p, 'Registered'));
      await load();
      focusCard(p.arnFingerPrint);
    },
  });

  const el = h('div', { class: 'view view-keys' },
    h('div', { class: 'page-head' }, heading),
    h('p', { class: 'lead' },
      'A customer managed key — an AWS KMS key in your own AWS account — protects the tenant’s data instead of tenantcrypt’s internal KMS. ',
      'Register the key, test it, then migrate the tenant to it. Whoever controls the key then controls the tenant’s data.'),
    migration.el,
    h('section', { 'aria-labelledby': 'providers-title' }, listHeading, list),
    form.el);

  async function load() {
    try {
      // The first time, the list waits for the migration panel above it,
      // so that the cards do not move once they are shown.
      const [{ data }] = await Promise.all([ctx.api.get(`${KP}/actions/list`), migration.ready]);
      if (disposed) return;
      providers = Array.isArray(data) ? data : [];
      renderList();
      migration.relabel();
    } catch (err) {
      if (disposed || err.status === 401) return;
      replace(list, h('div', { class: 'notice notice-error', role: 'alert' },
        h('p', null, h('strong', null, 'The key providers could not be loaded. '), err.text),
        h('button', { type: 'button', onclick: () => load() }, 'Try again')));
    } finally {
      list.setAttribute('aria-busy', 'false');
    }
  }

  function renderList() {
    const m = migration.current();
    const running = isRunning(m);
    // A re-render (say, when a migration completes) must not lose the
    // keyboard user's place: note what had focus in the list.
    const active = list.contains(document.activeElement) ? document.activeElement : null;
    const activeCard = active && active.closest('article[data-fp]');
    const restore = activeCard ? { fp: activeCard.dataset.fp, action: active.dataset.action || '' } : null;
    const cards = providers.map((p) => card(p, { running, migration: m }));
    const registered = providers.filter((p) => p.keyprovider !== 'Qlik').length;
    replace(list,
      cards,
      registered === 0 ? h('p', { class: 'empty', 'data-testid': 'no-keys' },
        'No customer managed key is registered yet: the tenant uses the internal KMS. Register one below.') : null);
    if (restore) {
      const c = list.querySelector(`article[data-fp="${CSS.escape(restore.fp)}"]`);
      const b = c && restore.action && c.querySelector(`button[data-action="${CSS.escape(restore.action)}"]:not(:disabled)`);
      focus(b || (c && c.querySelector('h3')) || listHeading);
    }
  }

  function card(p, { running, migration: m }) {
    const isDefault = p.keyprovider === 'Qlik';
    const headId = id('provider');
    const target = running && m && m.migratingToFingerprint === p.arnFingerPrint;
    const result = h('div', { class: 'result', 'data-testid': 'result' });
    const prev = results.get(p.arnFingerPrint);
    if (prev) replace(result, prev);
    const buttons = [];
    if (isDefault) {
      if (!p.current) {
        buttons.push(h('button', {
          type: 'button', class: 'primary', disabled: running, 'data-action': 'reset',
          onclick: (e) => reset(p, result, e.currentTarget),
        }, 'Reset to the default provider'));
      }
    } else {
      buttons.push(h('button', { type: 'button', 'data-action': 'test', onclick: (e) => test(p, result, e.currentTarget) }, 'Test key'));
      if (!p.current && !target) {
        buttons.push(h('button', {
          type: 'button', class: 'primary', disabled: running, 'data-action': 'migrate',
          onclick: (e) => migrate(p, result, e.currentTarget),
        }, 'Migrate to this key'));
      }
      buttons.push(h('button', { type: 'button', 'data-action': 'rename', onclick: () => rename(p) }, 'Rename'));
      if (!p.current && !target) {
        buttons.push(h('button', { type: 'button', class: 'danger', 'data-action': 'delete', onclick: (e) => remove(p, result, e.currentTarget) }, 'Delete'));
      }
    }
    const replicas = (p.replicaKeys || []).map((r) => h('div', null, `${r.region}: `, h('code', null, r.arn)));
    return h('article', { class: p.current ? 'provider current' : 'provider', 'aria-labelledby': headId, 'data-testid': 'provider', 'data-fp': p.arnFingerPrint, 'data-current': p.current ? 'true' : 'false' },
      h('div', { class: 'provider-head' },
        h('h3', { id: headId, tabindex: '-1' }, p.name),
        p.current ? badge('Current', 'ok', { 'data-testid': 'current-badge' }) : null,
        isDefault ? badge('Default', 'info') : null,
        target ? badge('Migration target', 'info') : null),
      p.description ? h('p', { class: 'desc' }, p.description) : null,
      facts(isDefault ? [
        ['Type', 'Internal KMS, part of tenantcrypt'],
        ['Fingerprint', h('code', null, p.arnFingerPrint)],
      ] : p.keyprovider === 'KMIP' ? [
        ['Type', 'KMIP key manager (your own)'],
        ['Key URI', h('code', { 'data-testid': 'arn' }, p.arn)],
        ['Fingerprint', h('code', null, p.arnFingerPrint)],
        ['Registered', time(p.createdAt)],
        ['Other servers', p.kmip && p.kmip.endpoints && p.kmip.endpoints.length ? p.kmip.endpoints.map((e) => h('div', null, h('code', null, e))) : 'none'],
        ['Client certificate', p.kmip && p.kmip.clientCertificate ? 'registered (renew it with PATCH /kmip/clientCertificate, see docs/kmip.md)' : null],
      ] : [
        ['Type', 'AWS KMS'],
        ['ARN', h('code', { 'data-testid': 'arn' }, p.arn)],
        ['Fingerprint', h('code', null, p.arnFingerPrint)],
        ['Registered', time(p.createdAt)],
        ['Multi-region', p.multiRegion ? 'yes' : 'no'],
        ['Replicas', replicas.length ? replicas : 'none found'],
        ['DR compliance', p.drCompliant ? badge('Compliant', 'ok', { 'data-testid': 'dr' })
          : badge('Not compliant', 'bad', { 'data-testid': 'dr' })],
        ['Why not', !p.drCompliant && p.complianceError && p.complianceError.message ? complianceText(p.complianceError) : null],
        ['Became current', time(p.promotedToCurrentAt)],
        ['Stopped being current', time(p.demotedFromCurrentAt)],
      ]),
      result,
      buttons.length ? h('div', { class: 'actions' }, buttons) : null,
      !isDefault && p.current ? h('p', { class: 'hint' }, 'The current provider cannot be deleted: reset to the default provider or migrate to another key first.') : null);
  }

  function showResult(p, resultEl, nodes) {
    results.set(p.arnFingerPrint, nodes);
    replace(resultEl, nodes);
    const target = resultEl.firstElementChild;
    focus(target);
  }

  function errorResult(err, what) {
    return h('div', { class: 'notice notice-error', role: 'alert', 'data-testid': 'action-error' },
      h('p', null, h('strong', null, `${what} failed. `), err.text),
      err.requestId && err.status >= 500 ? h('p', { class: 'hint' }, `Request id ${err.requestId}.`) : null);
  }

  async function test(p, resultEl, btn) {
    btn.disabled = true;
    replace(resultEl, h('p', { class: 'hint', role: 'status' }, 'Testing the key in its region and in the DR region…'));
    try {
      const { data } = await ctx.api.post(`${KP}/${encodeURIComponent(p.arnFingerPrint)}/actions/test`);
      Object.assign(p, data);
      const nodes = complianceResult(data, 'Test');
      results.set(p.arnFingerPrint, nodes);
      renderList();
      focusResult(p.arnFingerPrint);
      ctx.announce(data.drCompliant ? `Test of ${p.name}: DR compliant.` : `Test of ${p.name}: not DR compliant.`);
    } catch (err) {
      if (err.status === 401) return;
      btn.disabled = false;
      showResult(p, resultEl, errorResult(err, 'The test'));
    }
  }

  async function migrate(p, resultEl, btn) {
    const st = await ctx.api.get('/api/v1/encryption/status').then((r) => r.data).catch(() => null);
    const total = st ? Object.values(st.cipherKeys || {}).reduce((a, b) => a + b, 0) : null;
    const bound = st ? duration(st.revocationBound) : 'the revocation bound';
    const ok = await confirm({
      title: `Migrate tenant ${ctx.tenantId} to “${p.name}”?`,
      confirmLabel: 'Migrate',
      body: [
        h('p', null, 'This is what will happen:'),
        h('ul', null,
          h('li', null, 'From now on, every new data key of the tenant is wrapped by the AWS KMS key ', h('code', null, p.arn), '.'),
          h('li', null, total === null ? 'The tenant’s existing data keys are rewrapped under it in the background.'
            : `The tenant’s ${plural(total, 'existing data key')} ${total === 1 ? 'is' : 'are'} rewrapped under it in the background; the progress is shown on this page.`),
          h('li', null, 'The tenant keeps working throughout. Ciphertexts and data-key handles do not change.'),
          h('li', null, `Once it is current, the key’s owner controls the tenant’s data: if the key is disabled, the data is unreadable within ${bound}; if it is deleted, the data is lost for good.`),
          h('li', null, 'No other migration (or reset) can start until this one has completed.')),
        p.drCompliant ? null : h('p', { class: 'notice notice-warn' }, 'This key is not DR compliant: test it and fix its policy or replica first if you can.'),
      ],
    });
    if (!ok) return;
    btn.disabled = true;
    try {
      await ctx.api.post(`${KP}/${encodeURIComponent(p.arnFingerPrint)}/actions/migrate`);
      results.delete(p.arnFingerPrint);
      ctx.announce(`Migration to ${p.name} started.`);
      await migration.refresh();
      await load();
      focus(migration.heading() || listHeading);
    } catch (err) {
      if (err.status === 401) return;
      btn.disabled = false;
      showResult(p, resultEl, errorResult(err, 'The migration'));
    }
  }

  async function reset(p, resultEl, btn) {
    const current = providers.find((x) => x.current);
    const st = await ctx.api.get('/api/v1/encryption/status').then((r) => r.data).catch(() => null);
    const total = st ? Object.values(st.cipherKeys || {}).reduce((a, b) => a + b, 0) : null;
    const ok = await confirm({
      title: `Reset tenant ${ctx.tenantId} to the default provider?`,
      confirmLabel: 'Reset to default',
      body: [
        h('p', null, 'This is what will happen:'),
        h('ul', null,
          h('li', null, 'From now on, every new data key of the tenant is wrapped by tenantcrypt’s internal KMS.'),
          h('li', null, total === null ? 'The tenant’s existing data keys are rewrapped under the internal KMS in the background.'
            : `The tenant’s ${plural(total, 'existing data key')} ${total === 1 ? 'is' : 'are'} rewrapped under the internal KMS in the background; the progress is shown on this page.`),
          current ? h('li', null, `“${current.name}” must stay enabled in AWS KMS until the migration completes. It stays registered, and can be deleted afterwards.`) : null,
          h('li', null, 'From then on the customer managed key no longer controls the tenant’s data. The tenant keeps working throughout.')),
      ],
    });
    if (!ok) return;
    btn.disabled = true;
    try {
      const res = await ctx.api.post(`${KP}/actions/reset-to-default-provider`);
      if (res.status === 200 && res.data && res.data.message) {
        showResult(p, resultEl, h('p', { class: 'notice notice-info', role: 'status' }, res.data.message));
        return;
      }
      ctx.announce('Reset to the default provider started.');
      await migration.refresh();
      await load();
      focus(migration.heading() || listHeading);
    } catch (err) {
      if (err.status === 401) return;
      btn.disabled = false;
      showResult(p, resultEl, errorResult(err, 'The reset'));
    }
  }

  async function rename(p) {
    const saved = await formDialog({
      title: `Rename “${p.name}”`,
      submitLabel: 'Save',
      fields: [
        { name: 'name', label: 'Name', value: p.name, required: true, hint: '1–256 characters.' },
        { name: 'description', label: 'Description', value: p.description, multiline: true, hint: 'Optional, at most 1024 characters.' },
      ],
      submit: async (v) => {
        const ops = [];
        if (v.name !== p.name) ops.push({ op: 'replace', path: '/name', value: v.name });
        if (v.description !== (p.description || '')) ops.push({ op: 'replace', path: '/description', value: v.description });
        if (ops.length) await ctx.api.patch(`${KP}/${encodeURIComponent(p.arnFingerPrint)}`, ops);
      },
    });
    if (!saved) return;
    ctx.announce('Key provider saved.');
    await load();
    focusCard(p.arnFingerPrint);
  }

  async function remove(p, resultEl, btn) {
    const ok = await confirm({
      title: `Delete “${p.name}”?`,
      confirmLabel: 'Delete',
      danger: true,
      body: [
        h('p', null, 'The key provider is removed from tenant ', ctx.tenantId, '. The key itself stays in AWS KMS, untouched.'),
        h('p', null, 'Only a provider that is not current and wraps none of the tenant’s data keys can be deleted: after a migration away from it, wait until the migration has completed.'),
      ],
    });
    if (!ok) return;
    btn.disabled = true;
    try {
      await ctx.api.del(`${KP}/${encodeURIComponent(p.arnFingerPrint)}`);
      results.delete(p.arnFingerPrint);
      ctx.announce(`Key provider ${p.name} deleted.`);
      await load();
      focus(listHeading);
    } catch (err) {
      if (err.status === 401) return;
      btn.disabled = false;
      showResult(p, resultEl, errorResult(err, 'Deleting'));
    }
  }

  function focusCard(fp) {
    const c = list.querySelector(`article[data-fp="${CSS.escape(fp)}"] h3`);
    focus(c || listHeading);
  }

  function focusResult(fp) {
    const r = list.querySelector(`article[data-fp="${CSS.escape(fp)}"] .result > *`);
    focus(r || listHeading);
  }

  load();
  return {
    el,
    focusTarget: heading,
    dispose() {
      disposed = true;
      migration.dispose();
    },
  };
}

function complianceText(e) {
  return `${e.message} (${[e.region, e.code].filter(Boolean).join(', ')})`;
}

// complianceResult says what a registration or test found.
function complianceResult(p, what) {
  const at = new Date().toLocaleTimeString();
  if (p.drCompliant) {
    const regions = (p.replicaKeys || []).map((r) => r.region).join(', ');
    return h('div', { class: 'notice notice-ok', 'data-testid': 'compliance', 'data-compliant': 'true' },
      h('p', null, h('strong', null, `${what}: DR compliant. `),
        `The key works in its own region${regions ? ` and in its replica (${regions})` : ''}: DescribeKey, GenerateDataKey, Encrypt and Decrypt all succeeded. `,
        h('span', { class: 'hint' }, `(${at})`)));
  }
  const e = p.complianceError || {};
  return h('div', { class: 'notice notice-warn', 'data-testid': 'compliance', 'data-compliant': 'false' },
    h('p', null, h('strong', null, `${what}: not DR compliant. `), e.message ? complianceText(e) : 'No usable replica in the DR region.', ' ',
      h('span', { class: 'hint' }, `(${at})`)),
    h('p', null, 'Fix the key policy or the replica in AWS KMS, then test again.'));
}

// registerForm is the "register a key" form. The server's validation
// messages are shown next to the field they concern.
function registerForm(ctx, { onRegistered }) {
  const fields = {
    arn: { label: 'Key ARN', hint: 'The full ARN of a symmetric multi-region key in your AWS account: arn:aws:kms:REGION:ACCOUNT:key/mrk-… (an alias cannot be used: it can be repointed).', required: true },
    name: { label: 'Name', hint: 'Shown in this console and in the API; 1–256 characters.', required: true },
    description: { label: 'Description (optional)', hint: 'At most 1024 characters.', multiline: true },
    serverCA: { label: 'Server CA (PEM)', hint: 'The CA certificate(s) that issued your KMIP servers’ TLS certificates. Paste it or choose the file.', multiline: true, pem: true, kmip: true },
    clientCertificate: { label: 'Client certificate (PEM)', hint: 'The certificate you issued to tenantcrypt for this tenant (extended key usage clientAuth); its identity needs Get Attributes, Encrypt and Decrypt on the key.', multiline: true, pem: true, kmip: true },
    clientKey: { label: 'Client key (PEM)', hint: 'The certificate’s private key. It is stored wrapped by tenantcrypt’s internal KMS and never shown again.', multiline: true, pem: true, kmip: true },
    endpoints: { label: 'Other servers of the cluster (optional)', hint: 'One HOST:PORT per line, tried in turn when a server does not answer. Two servers that answer make the key DR compliant.', multiline: true, kmip: true },
  };
  const ARN_HINTS = {
    'AWS-KMS': ['Key ARN', fields.arn.hint],
    KMIP: ['Key URI', 'kmip://HOST:PORT/UNIQUE-IDENTIFIER: your KMIP server and the Unique Identifier of an Active AES-256 key that allows Encrypt and Decrypt (see docs/kmip.md).'],
  };
  const inputs = {};
  const errors = {};
  let arnText;
  const rows = Object.entries(fields).map(([name, f]) => {
    const inputId = `kp-${name}`;
    const hintId = `${inputId}-hint`;
    const errId = `${inputId}-error`;
    const input = f.multiline
      ? h('textarea', { id: inputId, name, 'aria-describedby': hintId, spellcheck: f.pem ? 'false' : null, autocomplete: 'off' })
      : h('input', { id: inputId, name, type: 'text', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': hintId, 'aria-required': f.required ? 'true' : null });
    inputs[name] = input;
    errors[name] = h('p', { class: 'field-error', id: errId, hidden: true, 'data-testid': `${name}-error` });
    // A PEM field also takes a file: its text replaces the field's.
    const picker = f.pem ? h('input', { type: 'file', id: `${inputId}-file`, accept: '.pem,.crt,.cer,.key,text/plain', 'aria-label': `${f.label}: choose a file` }) : null;
    if (picker) {
      picker.addEventListener('change', async () => {
        const file = picker.files && picker.files[0];
        if (file) input.value = await file.text();
        picker.value = '';
      });
    }
    const label = h('label', { for: inputId }, f.label, f.required ? h('span', { 'aria-hidden': 'true' }, ' *') : null);
    const hint = h('p', { class: 'hint', id: hintId }, f.hint);
    if (name === 'arn') arnText = { label, hint };
    return h('div', { class: 'field', 'data-kmip': f.kmip ? 'true' : null, hidden: f.kmip ? true : null },
      label, hint, input, picker, errors[name]);
  });
  // The kind of key manager: AWS KMS (the default) or KMIP.
  let kind = 'AWS-KMS';
  const kindChoice = h('fieldset', { class: 'field kind' },
    h('legend', null, 'Key manager'),
    ...[['AWS-KMS', 'AWS KMS'], ['KMIP', 'KMIP key manager (hold your own key)']].map(([value, text]) =>
      h('label', { class: 'radio' },
        h('input', { type: 'radio', name: 'kind', value, id: `kp-kind-${value.toLowerCase()}`, checked: value === kind ? true : null,
          onchange: () => setKind(value) }),
        ' ', text)));
  function setKind(k) {
    kind = k;
    for (const row of rows) if (row.dataset.kmip) row.hidden = k !== 'KMIP';
    const [label, hint] = ARN_HINTS[k];
    arnText.label.firstChild.textContent = label;
    arnText.hint.textContent = hint;
  }
  const formError = h('div', { class: 'notice notice-error', role: 'alert', hidden: true, tabindex: '-1', 'data-testid': 'register-error' });
  const submitBtn = h('button', { type: 'submit', class: 'primary' }, 'Register key');
  const form = h('form', { class: 'stack', id: 'register-form', novalidate: true, 'aria-labelledby': 'register-title' },
    kindChoice, rows, formError, h('div', { class: 'actions' }, submitBtn));

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    for (const n of Object.keys(inputs)) clearFieldError(inputs[n], errors[n]);
    formError.hidden = true;
    const v = {
      arn: inputs.arn.value.trim(),
      name: inputs.name.value,
      description: inputs.description.value,
    };
    const required = kind === 'KMIP' ? ['arn', 'name', 'serverCA', 'clientCertificate', 'clientKey'] : ['arn', 'name'];
    for (const n of required.slice(2)) v[n] = inputs[n].value;
    const missing = required.filter((n) => !v[n].trim());
    for (const n of missing) showFieldError(inputs[n], errors[n], `Enter the ${fields[n].label.toLowerCase()}.`);
    if (missing.length) {
      inputs[missing[0]].focus();
      return;
    }
    submitBtn.disabled = true;
    submitBtn.textContent = 'Registering…';
    try {
      const body = { arn: v.arn, name: v.name, description: v.description, keyprovider: kind };
      if (kind === 'KMIP') {
        body.kmip = { serverCA: v.serverCA, clientCertificate: v.clientCertificate, clientKey: v.clientKey,
          endpoints: inputs.endpoints.value.split(/\s+/).filter(Boolean) };
      }
      const { data } = await ctx.api.post(KP, body);
      form.reset();
      setKind('AWS-KMS');
      ctx.announce(`Key “${data.name}” registered. Test it, then migrate to it.`);
      await onRegistered(data);
    } catch (err) {
      if (err.status === 401) return;
      let field = err.field;
      if (field === 'keyProvider' || field === 'keyprovider') field = '';
      if (field && field.startsWith('kmip.')) field = field.slice(5);
      // A KMIP setting that does not parse: the detail names it.
      if (!field && kind === 'KMIP' && err.code === 'Encryption-35') {
        field = ['serverCA', 'clientCertificate', 'clientKey', 'endpoints'].find((n) => (err.detail || '').includes(n)) || '';
      }
      if (!field && ARN_CODES.has(err.code) && !(kind === 'KMIP' && err.code === 'Encryption-31')) field = 'arn';
      if (field && inputs[field]) {
        showFieldError(inputs[field], errors[field], `${err.detail || err.title} (${err.code})`);
        inputs[field].focus();
      } else {
        replace(formError, h('p', null, h('strong', null, 'The key could not be registered. '), err.text));
        formError.hidden = false;
        formError.focus();
      }
    } finally {
      submitBtn.disabled = false;
      submitBtn.textContent = 'Register key';
    }
  });

  const el = h('section', { 'aria-labelledby': 'register-title', class: 'panel register' },
    h('h2', { id: 'register-title' }, 'Register a customer managed key'),
    h('p', { class: 'hint' },
      'An AWS KMS key must allow tenantcrypt DescribeKey, GenerateDataKey, Encrypt and Decrypt, in its region and in the DR region (see docs/customer-managed-keys.md); ',
      'a KMIP key must be an Active AES-256 key that the client certificate may use (see docs/kmip.md). ',
      'Registering changes nothing yet: the tenant moves to the key only when you migrate.'),
    form);
  return { el };
}
