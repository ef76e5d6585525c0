import type { Digest } from '../../oci/index.js';

/**
 * Key layout under one prefix P (every key starts with P, so `SCAN MATCH P*` finds them all):
 *
 *   P{Pr:<repo>}:tags          zset  tag names, score 0 (lexical paging with ZRANGEBYLEX)
 *   P{Pr:<repo>}:tagrec        hash  tag → TagRecord JSON
 *   P{Pr:<repo>}:repo          hash  local / mirrored → "1" | "0"
 *   P{Pr:<repo>}:links         hash  digest → LinkRecord JSON
 *   P{Pr:<repo>}:ref:<subject> set   digests of manifests whose subject is <subject> (superset; reads verify)
 *   Prepos                     zset  repositories with a record (markRepo), score 0
 *   Plinked                    zset  repositories that ever had a link (allLinks walks it), score 0
 *   Pd:<digest>                set   repositories the digest is linked into (superset; reads verify)
 *   Pu:<id>                    hash  UploadRecord fields
 *   Puploads                   set   upload ids
 *   Paccess                    hash  digest → last access ms
 *   Ps:<key>                   string SharedState value with PX expiry
 *   P{Ppulls}:<bucket>         hash  name → pulls in one time bucket, PX expiry, capped (one slot: read together)
 *
 * The `{Pr:<repo>}` hash tag puts all keys of one repository in one Cluster slot, so a repository's multi-key
 * changes run in one MULTI.
 */
export class RedisKeys {
  constructor(readonly prefix: string) {
    if (/[{}]/.test(prefix)) throw new Error(`redis keyPrefix must not contain { or }: ${JSON.stringify(prefix)}`);
  }
  private repo(repo: string): string {
    return `${this.prefix}{${this.prefix}r:${repo}}`;
  }
  tags(repo: string): string {
    return `${this.repo(repo)}:tags`;
  }
  tagRecords(repo: string): string {
    return `${this.repo(repo)}:tagrec`;
  }
  repoRecord(repo: string): string {
    return `${this.repo(repo)}:repo`;
  }
  links(repo: string): string {
    return `${this.repo(repo)}:links`;
  }
  referrers(repo: string, subject: Digest): string {
    return `${this.repo(repo)}:ref:${subject}`;
  }
  get repos(): string {
    return `${this.prefix}repos`;
  }
  get linked(): string {
    return `${this.prefix}linked`;
  }
  digestRepos(d: Digest): string {
    return `${this.prefix}d:${d}`;
  }
  upload(id: string): string {
    return `${this.prefix}u:${id}`;
  }
  get uploads(): string {
    return `${this.prefix}uploads`;
  }
  get access(): string {
    return `${this.prefix}access`;
  }
  pulls(bucket: string): string {
    return `${this.prefix}{${this.prefix}pulls}:${bucket}`;
  }
  state(key: string): string {
    return `${this.prefix}s:${key}`;
  }
}
