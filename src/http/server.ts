import Koa from 'koa';
import type { Registry } from '../core/types.js';
import type { Logger, Metrics } from '../observability/types.js';
import { adminRouter, type AdminRouterDeps } from './admin.js';
import { tokenEndpoint, type ClientAuth } from './auth/index.js';
import { forwarded } from './forwarded.js';
import { accessLog } from './middleware/access-log.js';
import { errors } from './middleware/errors.js';
import { apiEndpoint, type ApiDeps } from './api/index.js';
import { uiAssets } from './ui-assets.js';
import { ociRouter } from './oci.js';
import { opsRouter, type OpsDeps } from './ops.js';

export interface HttpDeps {
  registry: Registry;
  metrics: Metrics;
  logger: Logger;
  maxManifestBytes: number;
  ops: OpsDeps;
  /** /_wharf/admin/… (absent: no admin API) */
  admin?: AdminRouterDeps;
  /** client authentication and access rules for /v2 and /token (absent: open) */
  clientAuth?: ClientAuth;
  /** the web UI (`ui.enabled`): its JSON API, and where its built assets are (absent: not built) */
  ui?: { api: ApiDeps; assetsDir?: string };
  /** reverse proxies (IPs, CIDR ranges) whose X-Forwarded-* headers are believed */
  trustedProxies?: readonly string[];
}

/** The Koa application: access log → error rendering → OCI endpoints / ops endpoints. */
export function createHttpApp(deps: HttpDeps): Koa {
  const app = new Koa();
  app.silent = true;
  app.on('error', (err: Error) => deps.logger.debug({ err: err.message }, 'response error'));
  const ops = opsRouter(deps.ops);
  app.use(forwarded(deps.trustedProxies ?? []));
  app.use(accessLog(deps.logger, deps.metrics));
  app.use(errors(deps.logger));
  if (deps.admin) {
    const admin = adminRouter(deps.admin);
    app.use(admin.routes());
    app.use(admin.allowedMethods());
  }
  const auth = deps.clientAuth;
  if (auth) app.use(tokenEndpoint(auth, deps.registry.namespaces));
  if (deps.ui) {
    app.use(apiEndpoint(deps.ui.api));
    app.use(uiAssets(deps.ui.assetsDir, deps.logger));
  }
  app.use(ociRouter({ registry: deps.registry, metrics: deps.metrics, maxManifestBytes: deps.maxManifestBytes, authorize: auth && ((ctx, m) => auth.authorize(ctx, m)) }));
  app.use(ops.routes());
  app.use(ops.allowedMethods());
  return app;
}
