import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, setCsrf, type SessionInfo } from './api.js';
import { Announcer, ErrorBox, Loading } from './components.js';
import { CachePage } from './pages/cache.js';
import { ImagePage } from './pages/image.js';
import { LoginPage } from './pages/login.js';
import { MaintenancePage } from './pages/maintenance.js';
import { RepoPage } from './pages/repo.js';
import { ReposPage } from './pages/repos.js';
import { SetupPage } from './pages/setup.js';
import { href, useRoute, type Route } from './router.js';

function Page({ route, session, refresh }: { route: Route; session: SessionInfo; refresh: () => void }) {
  switch (route.page) {
    case 'repo':
      return <RepoPage key={route.name} name={route.name} session={session} />;
    case 'image':
      return <ImagePage key={`${route.name}/${route.ref}`} name={route.name} reference={route.ref} session={session} />;
    case 'cache':
      return <CachePage />;
    case 'setup':
      return <SetupPage session={session} />;
    case 'maintenance':
      return <MaintenancePage session={session} />;
    case 'login':
      return (
        <LoginPage
          onLogin={() => {
            refresh();
            location.hash = href.repos();
          }}
        />
      );
    default:
      return <ReposPage session={session} />;
  }
}

function App() {
  const route = useRoute();
  const [session, setSession] = useState<SessionInfo>();
  const [error, setError] = useState<unknown>();
  const refresh = () =>
    api.session().then(
      (s) => {
        setCsrf(s.csrf);
        setSession(s);
      },
      (e: unknown) => setError(e),
    );
  useEffect(() => {
    void refresh();
  }, []);
  const logout = async () => {
    await api.logout().catch(() => {});
    setCsrf(null);
    await refresh();
    location.hash = href.repos();
  };
  const current = (p: Route['page'] | Route['page'][]) => ((Array.isArray(p) ? p : [p]).includes(route.page) ? 'page' : undefined);
  return (
    <>
      <a class="skip" href="#content">
        Skip to content
      </a>
      <header>
        <a class="brand" href={href.repos()}>
          wharf
        </a>
        <nav aria-label="Main">
          <a href={href.repos()} aria-current={current(['repos', 'repo', 'image'])}>
            Repositories
          </a>
          <a href={href.cache()} aria-current={current('cache')}>
            Cache
          </a>
          <a href={href.setup()} aria-current={current('setup')}>
            Setup
          </a>
          {session?.maintain && (
            <a href={href.maintenance()} aria-current={current('maintenance')}>
              Maintenance
            </a>
          )}
        </nav>
        <div class="who">
          {session?.user ? (
            <>
              <span>
                <span class="sr-only">Logged in as </span>
                {session.user}
              </span>
              <button type="button" onClick={logout}>
                Log out
              </button>
            </>
          ) : session?.authEnabled ? (
            <a href={href.login()}>Log in</a>
          ) : null}
        </div>
      </header>
      <Announcer />
      <div id="content" tabIndex={-1}>
        {error !== undefined ? <ErrorBox error={error} /> : !session ? <Loading /> : <Page route={route} session={session} refresh={() => void refresh()} />}
      </div>
    </>
  );
}

render(<App />, document.getElementById('app')!);
