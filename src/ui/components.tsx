import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';

/** Announces short status messages to screen readers (copy done, deleted, errors). */
let announce: (msg: string) => void = () => {};
export function Announcer() {
  const [msg, setMsg] = useState('');
  announce = setMsg;
  return (
    <div class="sr-only" role="status" aria-live="polite">
      {msg}
    </div>
  );
}
export function say(msg: string): void {
  announce(msg);
}

export function CopyButton({ text, label }: { text: string; label: string }) {
  const [done, setDone] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone(true);
      say('Copied to the clipboard');
      setTimeout(() => setDone(false), 1500);
    } catch {
      say('Copy failed: select the text and copy it');
    }
  };
  return (
    <button type="button" class="copy" onClick={copy} aria-label={label}>
      {done ? 'Copied' : 'Copy'}
    </button>
  );
}

export type Tool = 'docker' | 'podman' | 'skopeo' | 'nerdctl' | 'ctr';
export const TOOLS: Tool[] = ['docker', 'podman', 'skopeo', 'nerdctl', 'ctr'];

/** The registry address to pull from: `ui.pullHost`, else the address this page was loaded from. */
export function pullHost(configured: string | null): string {
  return configured ?? location.host;
}

export function pullCommand(tool: Tool, ref: string): string {
  const insecure = location.protocol === 'http:';
  switch (tool) {
    case 'docker':
      return `docker pull ${ref}`;
    case 'podman':
      return `podman pull ${insecure ? '--tls-verify=false ' : ''}${ref}`;
    case 'skopeo':
      return `skopeo copy ${insecure ? '--src-tls-verify=false ' : ''}docker://${ref} oci-archive:image.tar`;
    case 'nerdctl':
      return `nerdctl pull ${insecure ? '--insecure-registry ' : ''}${ref}`;
    case 'ctr':
      // containerd's own client: the image goes into the default namespace, unpacked for ctr run.
      return `ctr image pull ${insecure ? '--plain-http ' : ''}${ref}`;
  }
}

/** Pull commands by tag and by digest, for the chosen client, each with a copy button. */
export function PullCommands({ host, name, tag, digest }: { host: string; name: string; tag?: string; digest: string }) {
  const [tool, setTool] = useState<Tool>(() => {
    const saved = localStorage.getItem('wharf.tool');
    return TOOLS.find((t) => t === saved) ?? 'docker';
  });
  const choose = (t: Tool) => {
    setTool(t);
    localStorage.setItem('wharf.tool', t);
  };
  const refs = [...(tag ? [{ label: 'by tag', ref: `${host}/${name}:${tag}` }] : []), { label: 'by digest', ref: `${host}/${name}@${digest}` }];
  return (
    <section class="pull" aria-label="Pull commands">
      <div class="tools" role="radiogroup" aria-label="Client">
        {TOOLS.map((t) => (
          <label key={t} class={t === tool ? 'on' : ''}>
            <input type="radio" name={`tool-${digest}`} value={t} checked={t === tool} onChange={() => choose(t)} />
            {t}
          </label>
        ))}
      </div>
      {refs.map((r) => {
        const cmd = pullCommand(tool, r.ref);
        return (
          <div class="cmd" key={r.label}>
            <span class="muted">{r.label}</span>
            <code>{cmd}</code>
            <CopyButton text={cmd} label={`Copy ${tool} pull command ${r.label}`} />
          </div>
        );
      })}
    </section>
  );
}

export function Loading() {
  return (
    <p class="muted" aria-busy="true">
      Loading…
    </p>
  );
}

export function ErrorBox({ error }: { error: unknown }) {
  return (
    <p class="error" role="alert">
      {error instanceof Error ? error.message : String(error)}
    </p>
  );
}

export function Badge({ children, kind }: { children: ComponentChildren; kind: string }) {
  return <span class={`badge ${kind}`}>{children}</span>;
}
