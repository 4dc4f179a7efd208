// Why: what users manage about themselves: password, two-factor authentication, API tokens.
import { useEffect, useState } from 'preact/hooks';
import qrcode from 'qrcode-generator';
import { api, Me } from '../api';
import { ChangePassword } from './login';
import { Errors, errorsFrom, Field, inputValue, Notice, Table, when } from '../ui';

export function Profile(props: { me: Me; onChange: () => void }) {
  return (
    <section>
      <h1>My profile</h1>
      <div class="cards">
        <ChangePassword me={props.me} onDone={() => {}} />
        <TwoFactor me={props.me} onChange={props.onChange} />
      </div>
      <Tokens />
    </section>
  );
}

function TwoFactor(props: { me: Me; onChange: () => void }) {
  const [enrol, setEnrol] = useState<{ otpauth_uri: string; secret_base32: string } | null>(null);
  const [code, setCode] = useState('');
  const [codes, setCodes] = useState<string[] | null>(null);
  const [password, setPassword] = useState('');
  const [errors, setErrors] = useState<Errors>({});
  const qr = (uri: string) => {
    const q = qrcode(0, 'M');
    q.addData(uri);
    q.make();
    return q.createDataURL(4, 8);
  };
  if (props.me.user.totp_enabled && !codes) {
    return (
      <form class="card" noValidate onSubmit={async (e) => { e.preventDefault(); try { await api('POST', '/auth/totp/disable', { password }); props.onChange(); } catch (err) { setErrors(errorsFrom(err)); } }}>
        <h2>Two-factor authentication</h2>
        <Notice kind="ok">On. Logins ask for a code from your authenticator app.</Notice>
        <Field label="Your password, to turn it off" name="password" errors={errors}><input type="password" value={password} onInput={(e) => setPassword(inputValue(e))} /></Field>
        <button class="danger" type="submit">Turn off</button>
      </form>
    );
  }
  return (
    <div class="card" data-testid="totp">
      <h2>Two-factor authentication</h2>
      {errors._ && <Notice kind="error">{errors._}</Notice>}
      {codes ? (
        <>
          <Notice kind="ok">Two-factor authentication is on. Keep these recovery codes somewhere safe; each works once.</Notice>
          <pre class="secret" data-testid="recovery-codes">{codes.join('\n')}</pre>
          <button onClick={() => { setCodes(null); props.onChange(); }}>Done</button>
        </>
      ) : enrol ? (
        <form noValidate onSubmit={async (e) => { e.preventDefault(); try { setCodes((await api<any>('POST', '/auth/totp/confirm', { code })).recovery_codes); } catch (err) { setErrors(errorsFrom(err)); } }}>
          <p>Scan this with your authenticator app, then enter the code it shows.</p>
          <img class="qr" src={qr(enrol.otpauth_uri)} alt="QR code for your authenticator app" />
          <p class="muted">Or enter the key by hand: <code data-testid="totp-secret">{enrol.secret_base32}</code></p>
          <Field label="Code" name="code" errors={errors}><input name="code" inputMode="numeric" value={code} onInput={(e) => setCode(inputValue(e))} /></Field>
          <button class="primary" type="submit">Turn on</button>
        </form>
      ) : (
        <>
          <p>Off. Add a second factor so a stolen password is not enough to log in.</p>
          <button class="primary" onClick={async () => { try { setEnrol(await api('POST', '/auth/totp/enroll')); } catch (err) { setErrors(errorsFrom(err)); } }}>Set up</button>
        </>
      )}
    </div>
  );
}

interface Token { id: string; name: string; prefix: string; created_at: string; expires_at: string | null; last_used_at: string | null }

function Tokens() {
  const [rows, setRows] = useState<Token[] | null>(null);
  const [name, setName] = useState('');
  const [days, setDays] = useState('90');
  const [fresh, setFresh] = useState<string | null>(null);
  const [errors, setErrors] = useState<Errors>({});
  const load = () => api<Token[]>('GET', '/tokens').then(setRows);
  useEffect(() => { load(); }, []);
  const create = async (e: Event) => {
    e.preventDefault();
    const errs: Errors = {};
    if (!name.trim()) errs.name = 'Name the token after what will use it.';
    if (days && !/^\d+$/.test(days)) errs.expires_in_days = 'Enter a number of days, or leave empty for no expiry.';
    setErrors(errs);
    if (Object.keys(errs).length) return;
    try {
      const r = await api<any>('POST', '/tokens', { name: name.trim(), expires_in_days: days ? Number(days) : null });
      setFresh(r.token); setName(''); load();
    } catch (err) {
      setErrors(errorsFrom(err));
    }
  };
  return (
    <div class="card">
      <h2>API tokens</h2>
      <p class="muted">For scripts: send <code>Authorization: Bearer &lt;token&gt;</code>. A token can do what you can do.</p>
      {fresh && <Notice kind="ok">New token (shown once; copy it now): <code data-testid="new-token">{fresh}</code></Notice>}
      <form class="inline" onSubmit={create} noValidate>
        <Field label="Name" name="name" errors={errors}><input value={name} onInput={(e) => setName(inputValue(e))} /></Field>
        <Field label="Expires in (days)" name="expires_in_days" errors={errors}><input value={days} onInput={(e) => setDays(inputValue(e))} inputMode="numeric" /></Field>
        <button class="primary" type="submit">Create token</button>
      </form>
      {errors._ && <Notice kind="error">{errors._}</Notice>}
      {rows && (
        <Table rows={rows} rowKey={(t) => t.id} filter={false} empty="No tokens."
          columns={[
            { key: 'name', label: 'Name' },
            { key: 'prefix', label: 'Starts with', render: (t) => <code>{t.prefix}…</code> },
            { key: 'created_at', label: 'Created', render: (t) => when(t.created_at) },
            { key: 'expires_at', label: 'Expires', render: (t) => (t.expires_at ? when(t.expires_at) : 'never') },
            { key: 'last_used_at', label: 'Last used', render: (t) => (t.last_used_at ? when(t.last_used_at) : 'never') },
            { key: 'x', label: '', value: () => '', render: (t) => <button class="danger" onClick={async () => { await api('DELETE', `/tokens/${t.id}`); load(); }}>Revoke</button> },
          ]} />
      )}
    </div>
  );
}
