// Why: the few building blocks every page uses — a sortable, filterable table; form fields
// that show their own error; a modal; notices — so pages stay short and behave alike.
import { ComponentChildren } from 'preact';
import { useMemo, useState } from 'preact/hooks';
import { api, ApiError } from './api';

export interface Column<T> {
  key: string;
  label: string;
  render?: (row: T) => ComponentChildren;
  value?: (row: T) => string | number;
}

export function Table<T>(props: { rows: T[]; columns: Column<T>[]; rowKey: (r: T) => string; empty?: string; filter?: boolean; testid?: string; onRow?: (r: T) => void }) {
  const [sortKey, setSortKey] = useState<string | null>(null);
  const [asc, setAsc] = useState(true);
  const [q, setQ] = useState('');
  const valueOf = (c: Column<T>, r: T): string | number => (c.value ? c.value(r) : String((r as any)[c.key] ?? ''));
  const rows = useMemo(() => {
    const needle = q.trim().toLowerCase();
    let out = needle ? props.rows.filter((r) => props.columns.some((c) => String(valueOf(c, r)).toLowerCase().includes(needle))) : props.rows.slice();
    const col = props.columns.find((c) => c.key === sortKey);
    if (col) {
      out.sort((a, b) => {
        const x = valueOf(col, a), y = valueOf(col, b);
        const cmp = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true });
        return asc ? cmp : -cmp;
      });
    }
    return out;
  }, [props.rows, sortKey, asc, q]);
  return (
    <div class="table-wrap" data-testid={props.testid}>
      {props.filter !== false && (
        <input class="filter" type="search" placeholder="Filter…" value={q} onInput={(e) => setQ((e.target as HTMLInputElement).value)} aria-label="Filter rows" />
      )}
      <table>
        <thead>
          <tr>
            {props.columns.map((c) => (
              <th key={c.key} class={c.key === sortKey ? (asc ? 'sorted asc' : 'sorted desc') : ''}
                onClick={() => { if (sortKey === c.key) setAsc(!asc); else { setSortKey(c.key); setAsc(true); } }}>
                {c.label}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.length === 0 && (
            <tr><td class="empty" colSpan={props.columns.length}>{q ? 'Nothing matches the filter.' : props.empty ?? 'Nothing here yet.'}</td></tr>
          )}
          {rows.map((r) => (
            <tr key={props.rowKey(r)} class={props.onRow ? 'clickable' : ''} onClick={props.onRow ? () => props.onRow!(r) : undefined}>
              {props.columns.map((c) => <td key={c.key}>{c.render ? c.render(r) : String((r as any)[c.key] ?? '')}</td>)}
            </tr>
          ))}
        </tbody>
      </table>
      <div class="count">{rows.length} of {props.rows.length}</div>
    </div>
  );
}

export type Errors = Record<string, string | undefined>;

export function Field(props: { label: string; name: string; errors?: Errors; hint?: string; children: ComponentChildren }) {
  const err = props.errors?.[props.name];
  return (
    <label class={'field' + (err ? ' has-error' : '')}>
      <span class="label">{props.label}</span>
      {props.children}
      {err ? <span class="error" role="alert" data-field={props.name}>{err}</span> : props.hint ? <span class="hint">{props.hint}</span> : null}
    </label>
  );
}

export function Modal(props: { title: string; onClose: () => void; children: ComponentChildren }) {
  return (
    <div class="modal-backdrop" onClick={(e) => { if (e.target === e.currentTarget) props.onClose(); }}>
      <div class="modal" role="dialog" aria-label={props.title}>
        <header><h2>{props.title}</h2><button class="link" onClick={props.onClose} aria-label="Close">✕</button></header>
        {props.children}
      </div>
    </div>
  );
}

export function Notice(props: { kind: 'error' | 'ok' | 'info'; children: ComponentChildren }) {
  return <div class={'notice ' + props.kind} role={props.kind === 'error' ? 'alert' : 'status'}>{props.children}</div>;
}

/** Turns an API error into per-field errors (when the server named a field) or a general one. */
export function errorsFrom(e: unknown): Errors {
  if (e instanceof ApiError) {
    if (e.field) return { [e.field]: e.message };
    return { _: e.message };
  }
  return { _: String(e) };
}

export function inputValue(e: Event): string {
  return (e.target as HTMLInputElement).value;
}

export function when(iso: string | null | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  return isNaN(d.getTime()) ? iso : d.toLocaleString();
}

/** A named group with a description and a checklist of members (user groups, resource
 *  groups). Creates (POST `path`) or updates (PATCH `path`) and sends the members under
 *  `membersField`. */
export function GroupForm(props: {
  path: string; method: 'POST' | 'PATCH'; name?: string; description?: string; selected?: string[];
  membersField: string; membersLabel: string; choices: { id: string; label: string }[]; onSaved: () => void;
}) {
  const [name, setName] = useState(props.name ?? '');
  const [description, setDescription] = useState(props.description ?? '');
  const [ids, setIds] = useState<string[]>(props.selected ?? []);
  const [errors, setErrors] = useState<Errors>({});
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!name.trim()) return setErrors({ name: 'Give the group a name.' });
    try {
      await api(props.method, props.path, { name: name.trim(), description, [props.membersField]: ids });
      props.onSaved();
    } catch (err) {
      setErrors(errorsFrom(err));
    }
  };
  return (
    <form onSubmit={submit} noValidate>
      {errors._ && <Notice kind="error">{errors._}</Notice>}
      <Field label="Name" name="name" errors={errors}><input name="name" value={name} onInput={(e) => setName(inputValue(e))} /></Field>
      <Field label="Description" name="description" errors={errors}><input name="description" value={description} onInput={(e) => setDescription(inputValue(e))} /></Field>
      <Field label={props.membersLabel} name={props.membersField} errors={errors}>
        <div class="checklist">
          {props.choices.map((c) => (
            <label class="check"><input type="checkbox" checked={ids.includes(c.id)} onChange={(e) => setIds((e.target as HTMLInputElement).checked ? [...ids, c.id] : ids.filter((x) => x !== c.id))} /> {c.label}</label>
          ))}
        </div>
      </Field>
      <button class="primary" type="submit">Save</button>
    </form>
  );
}

/** A byte count for people: 512 B, 3.4 KiB, 1.2 MiB. */
export const bytes = (n: number) => (n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(1)} MiB`);

/** A duration in milliseconds as h:mm:ss. */
export const duration = (ms: number) => {
  const s = Math.max(0, Math.floor(ms / 1000));
  return `${Math.floor(s / 3600)}:${String(Math.floor(s / 60) % 60).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
};
