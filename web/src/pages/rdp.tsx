// Why: an RDP resource's settings on its page: which security the gateway offers (with what
// TLS-only means for a wrong password), the keyboard layout, the clipboard policy and how the
// desktop is sized (following the browser tab, or fixed), whether photographs may travel lossy,
// and how hard a desktop that changes without pause is held back (CPU against latency).
// Everyone who sees the resource sees them; administrators change them (audited).
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import { Errors, errorsFrom, Field, inputValue, Notice } from '../ui';

interface RdpView { port: number | null; security: string; keyboard_layout: number; clipboard: string; display: string; fixed_width: number; fixed_height: number; image_quality: string; flood_pacing: string; tls_only_warning: string | null }

const SECURITY: Record<string, string> = { nla: 'NLA required', nla_preferred: 'NLA preferred (TLS if the server has no NLA)', tls: 'TLS only' };
const CLIPBOARD: Record<string, string> = { off: 'off', to_target: 'browser to target only', both: 'both directions' };
const DISPLAY: Record<string, string> = { follow: 'follows the browser tab', fixed: 'fixed size' };
const QUALITY: Record<string, string> = { auto: 'photographs as JPEG while they move, then exact', lossless: 'always exact (lossless)' };
const PACING: Record<string, string> = { thrifty: 'thrifty (about 2 frames a second, least CPU)', responsive: 'responsive (changes seen sooner, several times the CPU)', immediate: 'immediate (never held back, about ten times the CPU)' };

export function RdpSettings(props: { resourceId: string; canChange: boolean }) {
  const [v, setV] = useState<RdpView | null>(null);
  const [editing, setEditing] = useState(false);
  const [form, setForm] = useState({ security: 'nla_preferred', keyboard_layout: '1033', clipboard: 'off', display: 'follow', fixed_width: '1280', fixed_height: '800', image_quality: 'auto', flood_pacing: 'thrifty' });
  const [errors, setErrors] = useState<Errors>({});
  const [saved, setSaved] = useState(false);
  const load = () => api<RdpView>('GET', `/resources/${props.resourceId}/rdp`).then((x) => {
    setV(x);
    setForm({ security: x.security, keyboard_layout: String(x.keyboard_layout), clipboard: x.clipboard, display: x.display, fixed_width: String(x.fixed_width), fixed_height: String(x.fixed_height), image_quality: x.image_quality, flood_pacing: x.flood_pacing });
  }).catch((e) => setErrors(errorsFrom(e)));
  useEffect(() => { load(); }, [props.resourceId]);
  if (!v) return <span class="muted">{errors._ ?? '…'}</span>;
  const save = async (e: Event) => {
    e.preventDefault();
    try {
      await api('PUT', `/resources/${props.resourceId}/rdp`, { security: form.security, keyboard_layout: Number(form.keyboard_layout), clipboard: form.clipboard, display: form.display, fixed_width: Number(form.fixed_width), fixed_height: Number(form.fixed_height), image_quality: form.image_quality, flood_pacing: form.flood_pacing });
      setErrors({}); setEditing(false); setSaved(true); load();
    } catch (err) { setErrors(errorsFrom(err)); }
  };
  return (
    <div data-testid="rdp-settings">
      <p>Security: <b>{SECURITY[v.security] ?? v.security}</b> · keyboard layout <b>0x{v.keyboard_layout.toString(16).padStart(4, '0')}</b> · clipboard <b>{CLIPBOARD[v.clipboard] ?? v.clipboard}</b> · desktop <b data-testid="rdp-display">{v.display === 'fixed' ? `fixed ${v.fixed_width}×${v.fixed_height}` : DISPLAY.follow}</b> · pictures <b data-testid="rdp-image-quality">{QUALITY[v.image_quality] ?? v.image_quality}</b> · under a flood <b data-testid="rdp-flood-pacing">{PACING[v.flood_pacing] ?? v.flood_pacing}</b></p>
      {v.tls_only_warning && <Notice kind="info">{v.tls_only_warning}</Notice>}
      {saved && !editing && <Notice kind="ok">Saved; new RDP sessions use it.</Notice>}
      {props.canChange && !editing && <button onClick={() => { setEditing(true); setSaved(false); }} data-testid="edit-rdp">Change RDP settings…</button>}
      {props.canChange && editing && (
        <form onSubmit={save}>
          <Field label="Security" name="security" errors={errors}>
            <select name="security" value={form.security} onChange={(e) => setForm({ ...form, security: inputValue(e) })}>
              {Object.entries(SECURITY).map(([k, label]) => <option value={k}>{label}</option>)}
            </select>
          </Field>
          <Field label="Keyboard layout" name="keyboard_layout" errors={errors} hint="The target's Windows keyboard layout id, e.g. 1033 (US English), 2057 (UK), 1031 (German).">
            <input name="keyboard_layout" type="number" value={form.keyboard_layout} onInput={(e) => setForm({ ...form, keyboard_layout: inputValue(e) })} />
          </Field>
          <Field label="Clipboard" name="clipboard" errors={errors} hint="Text only; every transfer is audited and recorded.">
            <select name="clipboard" value={form.clipboard} onChange={(e) => setForm({ ...form, clipboard: inputValue(e) })}>
              {Object.entries(CLIPBOARD).map(([k, label]) => <option value={k}>{label}</option>)}
            </select>
          </Field>
          <Field label="Desktop size" name="display" errors={errors} hint="Following the tab uses the server's display control (Windows, xrdp); servers without it keep the first size and the picture is scaled.">
            <select name="display" value={form.display} onChange={(e) => setForm({ ...form, display: inputValue(e) })}>
              {Object.entries(DISPLAY).map(([k, label]) => <option value={k}>{label}</option>)}
            </select>
          </Field>
          {form.display === 'fixed' && (
            <>
              <Field label="Width (pixels)" name="fixed_width" errors={errors}>
                <input name="fixed_width" type="number" value={form.fixed_width} onInput={(e) => setForm({ ...form, fixed_width: inputValue(e) })} />
              </Field>
              <Field label="Height (pixels)" name="fixed_height" errors={errors}>
                <input name="fixed_height" type="number" value={form.fixed_height} onInput={(e) => setForm({ ...form, fixed_height: inputValue(e) })} />
              </Field>
            </>
          )}
          <Field label="Image quality" name="image_quality" errors={errors} hint="Automatic sends large photographic regions as JPEG while they change (several times fewer bytes) and again exactly once they are still; lossless sends every region exactly from the start.">
            <select name="image_quality" value={form.image_quality} onChange={(e) => setForm({ ...form, image_quality: inputValue(e) })}>
              {Object.entries(QUALITY).map(([k, label]) => <option value={k}>{label}</option>)}
            </select>
          </Field>
          <Field label="Under a flood" name="flood_pacing" errors={errors} hint="While the whole desktop changes without pause (a scrolling log, a video), thrifty holds the server back half a second after each picture: about 2 pictures a second at about 2 % of a core per session. Responsive holds it back 50 ms: changes are seen sooner where the gateway has CPU to spare, at several times the CPU. Immediate never holds it back: every update is decoded as it comes, as a native client does, and changes are seen about as soon as in one, at about ten times the CPU; on a busy gateway it falls behind the server instead. A quiet desktop (typing, clicking) is never held back.">
            <select name="flood_pacing" value={form.flood_pacing} onChange={(e) => setForm({ ...form, flood_pacing: inputValue(e) })}>
              {Object.entries(PACING).map(([k, label]) => <option value={k}>{label}</option>)}
            </select>
          </Field>
          {errors._ && <Notice kind="error">{errors._}</Notice>}
          <div class="actions"><button type="submit" class="primary">Save RDP settings</button><button type="button" onClick={() => { setEditing(false); setErrors({}); load(); }}>Cancel</button></div>
        </form>
      )}
    </div>
  );
}
