import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { ErrorBox } from '../components.js';

export function LoginPage({ onLogin }: { onLogin: () => void }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await api.login(username, password);
      setPassword('');
      onLogin();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="narrow">
      <h1>Log in</h1>
      <p class="muted">With your registry credentials (the ones <code>docker login</code> takes).</p>
      <form onSubmit={submit} class="login">
        <label>
          <span>User name</span>
          <input name="username" autoComplete="username" required value={username} onInput={(e) => setUsername(e.currentTarget.value)} />
        </label>
        <label>
          <span>Password or token</span>
          <input name="password" type="password" autoComplete="current-password" required value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
        </label>
        <button type="submit" disabled={busy}>
          Log in
        </button>
        {error !== undefined && <ErrorBox error={error} />}
      </form>
    </main>
  );
}
