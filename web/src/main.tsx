// Why: the app shell: who is logged in, which step of login they are at, and a hash router
// for the pages. Navigation shows only what the user's role allows; the server enforces it.
import { LogonScripts } from './pages/logon';
import { LandingServers } from './pages/landing';
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, Me, ROLES, setCsrf } from './api';
import { ChangePassword, Login, MfaStep } from './pages/login';
import { Accounts, ResourceDetail, ResourceGroups, Resources } from './pages/vault';
import { Audit, Policies, UserGroups, Users, VaultKeys } from './pages/admin';
import { Profile } from './pages/profile';
import { TerminalPage } from './pages/terminal';
import { DesktopPage } from './pages/desktop';
import { LiveSessions } from './pages/live';
import { Player, Recordings } from './pages/recordings';
import { RotationJobs } from './pages/rotation';

function useHash(): string {
  const [hash, setHash] = useState(location.hash || '#/accounts');
  useEffect(() => {
    const f = () => setHash(location.hash || '#/accounts');
    window.addEventListener('hashchange', f);
    return () => window.removeEventListener('hashchange', f);
  }, []);
  return hash;
}

function App() {
  const [me, setMe] = useState<Me | null | undefined>(undefined);
  const [message, setMessage] = useState<string | undefined>();
  const hash = useHash();
  const refresh = async () => {
    try {
      const m = await api<Me>('GET', '/auth/me');
      setCsrf(m.csrf_token);
      setMe(m);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401 && me) setMessage(e.message);
      setMe(null);
    }
  };
  useEffect(() => { refresh(); }, []);
  // Any 401 from a page means the login expired (idle timeout): go back to the login form.
  useEffect(() => {
    const f = (e: PromiseRejectionEvent) => {
      if (e.reason instanceof ApiError && e.reason.status === 401) { setMessage('Your login expired. Log in again.'); setMe(null); }
    };
    window.addEventListener('unhandledrejection', f);
    return () => window.removeEventListener('unhandledrejection', f);
  }, []);
  const logout = async () => {
    try { await api('POST', '/auth/logout'); } catch { /* already gone */ }
    setCsrf(null);
    setMe(null);
    setMessage('You are logged out.');
    // The next person to log in on this tab starts from the start page, not our last one.
    location.hash = '#/accounts';
  };
  if (me === undefined) return <div class="center">Loading…</div>;
  if (me === null) return <Login message={message} onDone={(m) => { setMessage(undefined); setMe(m); }} />;
  if (me.mfa_pending) return <MfaStep onDone={(m) => setMe(m)} onCancel={logout} />;
  if (me.must_change_password) return <ChangePassword me={me} forced onDone={refresh} />;

  // A session tab: the terminal alone, without the navigation.
  if (hash.startsWith('#/terminal/')) {
    const [accountId, protocol] = hash.slice('#/terminal/'.length).split('/');
    return <TerminalPage accountId={accountId} protocol={protocol === 'telnet' ? 'telnet' : undefined} />;
  }
  if (hash.startsWith('#/desktop/')) return <DesktopPage accountId={hash.slice('#/desktop/'.length)} />;
  if (hash.startsWith('#/watch-desktop/')) return <DesktopPage accountId="" watch={hash.slice('#/watch-desktop/'.length)} />;
  if (hash.startsWith('#/join-desktop/')) return <DesktopPage accountId="" join={hash.slice('#/join-desktop/'.length)} />;
  if (hash.startsWith('#/watch/')) return <TerminalPage accountId="" watch={hash.slice('#/watch/'.length)} />;
  if (hash.startsWith('#/join/')) return <TerminalPage accountId="" join={hash.slice('#/join/'.length)} />;

  const caps = me.capabilities;
  const nav: [string, string, boolean][] = [
    ['#/accounts', 'Connect', true],
    ['#/sessions', 'Live sessions', true],
    ['#/resources', 'Resources', true],
    ['#/resource-groups', 'Resource groups', true],
    ['#/users', 'Users', caps.manage_users],
    ['#/user-groups', 'User groups', caps.manage_users],
    ['#/policies', 'Password policies', true],
    ['#/logon-scripts', 'Logon scripts', caps.manage_users],
    ['#/landing-servers', 'Landing servers', true],
    ['#/recordings', 'Recorded sessions', true],
    ['#/rotation', 'Rotation', caps.read_audit || caps.create_resources],
    ['#/audit', 'Audit', caps.read_audit],
    ['#/vault-keys', 'Vault keys', caps.manage_users || caps.read_audit],
    ['#/profile', 'My profile', true],
  ];
  const [path, id] = hash.replace(/^#\//, '').split('/');
  let page;
  switch (path) {
    case 'resources': page = id ? <ResourceDetail id={id} me={me} /> : <Resources me={me} />; break;
    case 'resource-groups': page = <ResourceGroups me={me} />; break;
    case 'users': page = <Users me={me} />; break;
    case 'user-groups': page = <UserGroups />; break;
    case 'policies': page = <Policies me={me} />; break;
    case 'logon-scripts': page = <LogonScripts me={me} />; break;
    case 'landing-servers': page = <LandingServers me={me} />; break;
    case 'audit': page = <Audit />; break;
    case 'vault-keys': page = <VaultKeys me={me} />; break;
    case 'rotation': page = <RotationJobs me={me} />; break;
    case 'sessions': page = <LiveSessions me={me} />; break;
    case 'recordings': page = id ? <Player id={id} me={me} /> : <Recordings />; break;
    case 'profile': page = <Profile me={me} onChange={refresh} />; break;
    default: page = <Accounts me={me} />;
  }
  return (
    <div class="shell">
      <nav>
        <div class="brand">Portcullis</div>
        {nav.filter(([, , show]) => show).map(([href, label]) => (
          <a href={href} class={hash.startsWith(href) ? 'active' : ''}>{label}</a>
        ))}
        <div class="whoami">
          <div data-testid="whoami">{me.user.username}</div>
          <div class="muted">{ROLES[me.user.role ?? ''] ?? me.user.role}{me.user.super_admin ? ' · super admin' : ''}</div>
          <button class="link" onClick={logout}>Log out</button>
        </div>
      </nav>
      <main>{page}</main>
    </div>
  );
}

const root = document.getElementById('app');
if (root) render(<App />, root);
