import type { SessionInfo } from '../api.js';
import { CopyButton, pullHost } from '../components.js';

function Snippet({ title, file, text }: { title: string; file: string; text: string }) {
  return (
    <section>
      <h2>{title}</h2>
      <p class="muted">{file}</p>
      <div class="snippet">
        <pre>
          <code>{text}</code>
        </pre>
        <CopyButton text={text} label={`Copy ${title} configuration`} />
      </div>
    </section>
  );
}

/** How to point clients at this mirror. */
export function SetupPage({ session }: { session: SessionInfo }) {
  const host = pullHost(session.pullHost);
  const scheme = location.protocol === 'https:' ? 'https' : 'http';
  const insecure = scheme === 'http';
  return (
    <main>
      <h1>Use this mirror</h1>
      <p>
        Pull through it by prefixing names with <code>{host}/</code> (<code>{host}/ghcr.io/org/image:tag</code>), or configure a client to use it as a mirror:
      </p>
      <Snippet
        title="Docker"
        file="/etc/docker/daemon.json (then restart dockerd)"
        text={JSON.stringify({ 'registry-mirrors': [`${scheme}://${host}`], ...(insecure ? { 'insecure-registries': [host] } : {}) }, null, 2)}
      />
      <Snippet
        title="containerd"
        file="/etc/containerd/certs.d/docker.io/hosts.toml (one directory per registry)"
        text={`server = "https://registry-1.docker.io"\n\n[host."${scheme}://${host}"]\n  capabilities = ["pull", "resolve"]${insecure ? '\n  skip_verify = true' : ''}\n`}
      />
      <Snippet
        title="Podman / CRI-O"
        file="/etc/containers/registries.conf"
        text={`[[registry]]\nprefix = "docker.io"\nlocation = "registry-1.docker.io"\n\n[[registry.mirror]]\nlocation = "${host}"${insecure ? '\ninsecure = true' : ''}\n`}
      />
      {session.authEnabled && (
        <Snippet title="Log in" file="with your registry credentials" text={`docker login ${host}`} />
      )}
    </main>
  );
}
