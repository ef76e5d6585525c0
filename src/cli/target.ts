import { ConfigError, ConfigFileError, loadConfig, parseHostPort, formatHostPort, type WharfConfig } from '../config/index.js';
import { CliError } from './common.js';

/** `http(s)://<host>:<port>` reaching a listen address from the same machine: a wildcard host becomes loopback. */
export function localUrl(listen: string, https: boolean): string {
  const { host, port } = parseHostPort(listen);
  const h = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `${https ? 'https' : 'http'}://${formatHostPort(h, port)}`;
}

/** Where a running wharf answers, as its configuration says. */
export interface ConfiguredTarget {
  /** the registry API (and admin API) */
  url: string;
  admin?: { username: string; password: string };
}

/**
 * Reads the configuration wharf serves with (file and WHARF_* env, as `wharf serve` would) for the CLI.
 * WHARF_URL, WHARF_USERNAME and WHARF_PASSWORD are the CLI's own variables, not config keys, so they are left
 * out of the load.
 */
export async function loadTarget(file: string | undefined, env: Record<string, string | undefined>, cwd?: string): Promise<ConfiguredTarget> {
  const { WHARF_URL: _url, WHARF_USERNAME: _user, WHARF_PASSWORD: _password, ...configEnv } = env;
  let config: WharfConfig;
  try {
    config = await loadConfig({ ...(file !== undefined ? { file } : {}), env: configEnv, ...(cwd !== undefined ? { cwd } : {}) });
  } catch (e) {
    if (e instanceof ConfigError) throw new CliError(`invalid configuration:\n${e.problems.map((p) => `  ${p}`).join('\n')}`, 2);
    if (e instanceof ConfigFileError) throw new CliError(e.message, 2);
    throw e;
  }
  return targetOf(config);
}

export function targetOf(config: WharfConfig): ConfiguredTarget {
  const url = localUrl(config.listen, config.tls !== undefined);
  const { username, password } = config.admin;
  return {
    url,
    ...(username !== undefined && password !== undefined ? { admin: { username, password } } : {}),
  };
}
