const HOST_PORT = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]/]*)):(\d{1,5})$/;

/**
 * Splits `host:port` (`[::1]:5000` for IPv6). An empty host (`:5000`, as Go tools accept) means all
 * interfaces and comes back as `0.0.0.0`. Throws with a message fit for a config problem.
 */
export function parseHostPort(value: string): { host: string; port: number } {
  const m = HOST_PORT.exec(value.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new Error(`must be host:port with port 0-65535, got "${value}"`);
  }
  const host = m[1] ?? (m[2] === '' || m[2] === undefined ? '0.0.0.0' : m[2]);
  return { host, port };
}

/** Canonical `host:port` text (brackets around IPv6 hosts). */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
