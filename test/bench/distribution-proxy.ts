import { startRegistry, type RegistryProcess } from '../helpers/registry.js';

export interface DistributionProxyOptions {
  /** The registry it mirrors (`proxy.remoteurl`). */
  remoteUrl: string;
  username?: string;
  password?: string;
  startTimeoutMs?: number;
}

/**
 * CNCF Distribution 2.8 (`docker-registry serve`) as a pull-through cache: the configuration its
 * documentation gives for a Docker Hub mirror, with filesystem storage in a temp dir.
 */
export function startDistributionProxy(opts: DistributionProxyOptions): Promise<RegistryProcess> {
  const proxy: { remoteurl: string; username?: string; password?: string } = { remoteurl: opts.remoteUrl };
  if (opts.username !== undefined) proxy.username = opts.username;
  if (opts.password !== undefined) proxy.password = opts.password;
  return startRegistry({ proxy, startTimeoutMs: opts.startTimeoutMs });
}
