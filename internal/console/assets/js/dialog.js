// Modal dialogs built on <dialog>: the browser keeps focus inside, Escape
// cancels, and focus goes back to where it was when the dialog closes.

import { h, id } from './dom.js';

// confirm shows a question with what will happen and resolves to true when
// the user confirms. Focus starts on Cancel: nothing happens by accident.
export function confirm({ title, body, confirmLabel, danger }) {
  return new Promise((resolve) => {
    const opener = document.activeElement;
    const titleId = id('dlg-title');
    const bodyId = id('dlg-body');
    const cancel = h('button', { type: 'submit', value: 'cancel', autofocus: true }, 'Cancel');
    const ok = h('button', { type: 'submit', value: 'confirm', class: danger ? 'primary danger' : 'primary', 'data-testid': 'confirm' }, confirmLabel);
    const dlg = h('dialog', { 'aria-labelledby': titleId, 'aria-describedby': bodyId, class: 'confirm-dialog' },
      h('form', { method: 'dialog' },
        h('div', { class: 'dialog-body' }, h('h2', { id: titleId }, title), h('div', { id: bodyId }, body)),
        h('div', { class: 'dialog-actions' }, cancel, ok)));
    dlg.addEventListener('close', () => {
      const confirmed = dlg.returnValue === 'confirm';
      dlg.remove();
      if (opener && opener.isConnected && typeof opener.focus === 'function') opener.focus();
      resolve(confirmed);
    });
    document.body.append(dlg);
    dlg.showModal();
    cancel.focus();
  });
}

// formDialog shows a form; submit(values) returns a promise that resolves
// to true to close, or rejects with an ApiError whose field (if any) is
// shown next to that field. fields: [{name, label, value, multiline, hint}].
export function formDialog({ title, fields, submitLabel, submit }) {
  return new Promise((resolve) => {
    const opener = document.activeElement;
    const titleId = id('dlg-title');
    const inputs = {};
    const errors = {};
    const formError = h('p', { class: 'field-error', role: 'alert', hidden: true });
    const rows = fields.map((f) => {
      const inputId = id(`dlg-${f.name}`);
      const errId = `${inputId}-error`;
      const hintId = f.hint ? `${inputId}-hint` : null;
      const input = f.multiline
        ? h('textarea', { id: inputId, name: f.name, value: f.value || '', 'aria-describedby': hintId })
        : h('input', { id: inputId, name: f.name, type: 'text', value: f.value || '', 'aria-describedby': hintId, required: f.required });
      inputs[f.name] = input;
      errors[f.name] = h('p', { class: 'field-error', id: errId, hidden: true });
      return h('div', { class: 'field' },
        h('label', { for: inputId }, f.label),
        f.hint ? h('p', { class: 'hint', id: hintId }, f.hint) : null,
        input, errors[f.name]);
    });
    const cancel = h('button', { type: 'button' }, 'Cancel');
    const ok = h('button', { type: 'submit', class: 'primary' }, submitLabel);
    const form = h('form', { novalidate: true },
      h('div', { class: 'dialog-body' }, h('h2', { id: titleId }, title), formError, h('div', { class: 'stack' }, rows)),
      h('div', { class: 'dialog-actions' }, cancel, ok));
    const dlg = h('dialog', { 'aria-labelledby': titleId }, form);
    let done = false;
    const close = (result) => {
      if (done) return;
      done = true;
      dlg.close();
      dlg.remove();
      if (opener && opener.isConnected && typeof opener.focus === 'function') opener.focus();
      resolve(result);
    };
    cancel.addEventListener('click', () => close(false));
    dlg.addEventListener('cancel', (e) => { e.preventDefault(); close(false); });
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      for (const [name, el] of Object.entries(errors)) clearFieldError(inputs[name], el);
      formError.hidden = true;
      ok.disabled = true;
      const values = Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, el.value]));
      try {
        await submit(values);
        close(true);
      } catch (err) {
        ok.disabled = false;
        const field = err && err.field;
        if (field && errors[field]) {
          showFieldError(inputs[field], errors[field], err.detail || err.text);
          inputs[field].focus();
        } else {
          formError.textContent = err && err.text ? err.text : String(err);
          formError.hidden = false;
          formError.setAttribute('tabindex', '-1');
          formError.focus();
        }
      }
    });
    document.body.append(dlg);
    dlg.showModal();
    inputs[fields[0].name].focus();
  });
}

// showFieldError puts message next to input and marks it invalid.
export function showFieldError(input, errEl, message) {
  errEl.textContent = message;
  errEl.hidden = false;
  input.setAttribute('aria-invalid', 'true');
  const described = (input.getAttribute('aria-describedby') || '').split(/\s+/).filter(Boolean);
  if (!described.includes(errEl.id)) described.push(errEl.id);
  input.setAttribute('aria-describedby', described.join(' '));
}

// clearFieldError undoes showFieldError.
export function clearFieldError(input, errEl) {
  errEl.textContent = '';
  errEl.hidden = true;
  input.removeAttribute('aria-invalid');
  const described = (input.getAttribute('aria-describedby') || '').split(/\s+/).filter((x) => x && x !== errEl.id);
  if (described.length) input.setAttribute('aria-describedby', described.join(' '));
  else input.removeAttribute('aria-describedby');
}
