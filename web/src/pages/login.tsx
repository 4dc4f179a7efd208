// Why: the three steps before the app opens: password, second factor, forced password change.
import { useState } from 'preact/hooks';
import { api, Me, setCsrf } from '../api';
import { Errors, errorsFrom, Field, inputValue, Notice } from '../ui';

export function Login(props: { onDone: (me: Me) => void; message?: string }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [errors, setErrors] = useState<Errors>({});
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const errs: Errors = {};
    if (!username.trim()) errs.username = 'Enter your user name.';
    if (!password) errs.password = 'Enter your password.';
    setErrors(errs);
    if (Object.keys(errs).length) return;
    setBusy(true);
    try {
      const me = await api<Me>('POST', '/auth/login', { username: username.trim(), password });
      setCsrf(me.csrf_token);
      props.onDone(me);
    } catch (err) {
      setErrors(errorsFrom(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="center">
      <form class="card login" onSubmit={submit} noValidate>
        <h1>Portcullis</h1>
        {props.message && <Notice kind="info">{props.message}</Notice>}
        {errors._ && <Notice kind="error">{errors._}</Notice>}
        <Field label="User name" name="username" errors={errors}>
          <input name="username" autoComplete="username" value={username} onInput={(e) => setUsername(inputValue(e))} autoFocus />
        </Field>
        <Field label="Password" name="password" errors={errors}>
          <input name="password" type="password" autoComplete="current-password" value={password} onInput={(e) => setPassword(inputValue(e))} />
        </Field>
        <button type="submit" class="primary" disabled={busy}>{busy ? 'Logging in…' : 'Log in'}</button>
      </form>
    </div>
  );
}

export function MfaStep(props: { onDone: (me: Me) => void; onCancel: () => void }) {
  const [code, setCode] = useState('');
  const [errors, setErrors] = useState<Errors>({});
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!code.trim()) return setErrors({ code: 'Enter the 6-digit code from your authenticator app, or a recovery code.' });
    try {
      props.onDone(await api<Me>('POST', '/auth/totp', { code: code.trim() }));
    } catch (err) {
      setErrors(errorsFrom(err));
    }
  };
  return (
    <div class="center">
      <form class="card login" onSubmit={submit} noValidate>
        <h1>Two-factor code</h1>
        {errors._ && <Notice kind="error">{errors._}</Notice>}
        <Field label="Code" name="code" errors={errors} hint="From your authenticator app, or one of your recovery codes.">
          <input name="code" inputMode="numeric" autoComplete="one-time-code" value={code} onInput={(e) => setCode(inputValue(e))} autoFocus />
        </Field>
        <button type="submit" class="primary">Continue</button>
        <button type="button" class="link" onClick={props.onCancel}>Cancel and log out</button>
      </form>
    </div>
  );
}

export function validateNewPassword(pw: string, confirm: string, username: string): Errors {
  const errs: Errors = {};
  if (pw.length < 12) errs.new_password = 'Use at least 12 characters.';
  else if (username && pw.toLowerCase().includes(username.toLowerCase())) errs.new_password = 'Do not include your user name.';
  if (confirm !== pw) errs.confirm = 'The two passwords differ.';
  return errs;
}

export function ChangePassword(props: { me: Me; forced?: boolean; onDone: () => void }) {
  const [current, setCurrent] = useState('');
  const [pw, setPw] = useState('');
  const [confirm, setConfirm] = useState('');
  const [errors, setErrors] = useState<Errors>({});
  const [done, setDone] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const errs = validateNewPassword(pw, confirm, props.me.user.username);
    if (!current) errs.current_password = 'Enter your current password.';
    setErrors(errs);
    if (Object.keys(errs).length) return;
    try {
      await api('POST', '/auth/password', { current_password: current, new_password: pw });
      setDone(true);
      setCurrent(''); setPw(''); setConfirm('');
      props.onDone();
    } catch (err) {
      setErrors(errorsFrom(err));
    }
  };
  const form = (
    <form class={props.forced ? 'card login' : 'card'} onSubmit={submit} noValidate data-testid="change-password">
      <h2>{props.forced ? 'Choose a new password' : 'Change password'}</h2>
      {props.forced && <Notice kind="info">Your password was set by an administrator. Choose your own before continuing.</Notice>}
      {errors._ && <Notice kind="error">{errors._}</Notice>}
      {done && !props.forced && <Notice kind="ok">Password changed. Your other sessions were logged out.</Notice>}
      <Field label="Current password" name="current_password" errors={errors}>
        <input name="current_password" type="password" autoComplete="current-password" value={current} onInput={(e) => setCurrent(inputValue(e))} />
      </Field>
      <Field label="New password" name="new_password" errors={errors} hint="At least 12 characters; a passphrase is fine.">
        <input name="new_password" type="password" autoComplete="new-password" value={pw}
          onInput={(e) => { setPw(inputValue(e)); setErrors({}); }} />
      </Field>
      <Field label="New password again" name="confirm" errors={errors}>
        <input name="confirm" type="password" autoComplete="new-password" value={confirm} onInput={(e) => setConfirm(inputValue(e))} />
      </Field>
      <button type="submit" class="primary">Change password</button>
    </form>
  );
  return props.forced ? <div class="center">{form}</div> : form;
}
