import { S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { ErrorCode, RegistryError } from '../../oci/index.js';

/** How to reach the bucket (the shape of config `storage.s3`, kept here so store/ does not import config/). */
export interface S3Options {
  /** absent: AWS's endpoint for the region */
  endpoint?: string;
  region: string;
  bucket: string;
  /** key prefix, '' or ending in '/' */
  prefix: string;
  forcePathStyle: boolean;
  accessKeyId?: string;
  secretAccessKey?: string;
  /** bytes per multipart part (at least 5 MiB) */
  partSize: number;
  /** warm blob GETs answer 307 to a presigned URL */
  redirect: boolean;
  /** lifetime of a presigned URL (ms) */
  redirectExpiry: number;
}

/** Where object-storage requests are counted and timed, and where a refused credential is reported. */
export interface StorageObserver {
  storageRequest(op: string, status: string, seconds: number): void;
  /** The bucket refused our credentials or policy: an operator must act (logged once per occurrence). */
  accessDenied(op: string, message: string): void;
}

export const noStorageObserver: StorageObserver = { storageRequest() {}, accessDenied() {} };

/**
 * An SDK client as every S3 implementation accepts it: checksums only where an operation requires them
 * (the default aws-chunked streaming uploads are refused by Swift, Ceph and others with 501).
 */
export function createS3Client(opts: S3Options): S3Client {
  return new S3Client({
    ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
    region: opts.region,
    forcePathStyle: opts.forcePathStyle,
    ...(opts.accessKeyId && opts.secretAccessKey ? { credentials: { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey } } : {}),
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
    // A bucket that stops answering must fail requests, not hang them: connect within 5 s, and no socket idle
    // for more than 60 s (a body streaming to a slow client keeps its socket busy).
    requestHandler: { connectionTimeout: 5_000, requestTimeout: 60_000 },
  });
}

const THROTTLED = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'RequestLimitExceeded', 'TooManyRequests', 'TooManyRequestsException', 'ServiceUnavailable', 'RequestThrottled']);
const DENIED = new Set(['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AllAccessDisabled', 'AccountProblem', 'InvalidToken', 'ExpiredToken']);

/** HTTP status of an SDK error ('error' when no response came back: refused connection, timeout). */
export function statusOf(e: unknown): string {
  const code = (e as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
  return code ? String(code) : 'error';
}

export function isNotFound(e: unknown): boolean {
  const name = (e as { name?: string })?.name;
  return name === 'NoSuchKey' || name === 'NotFound' || name === 'NoSuchUpload' || statusOf(e) === '404';
}

/**
 * An object-storage failure as clients should see it: throttling is a 503 with Retry-After (the client
 * retries); a refused credential is a server fault (500) that `onDenied` reports; anything else passes on.
 */
export function mapStorageError(e: unknown, op: string, onDenied: (op: string, message: string) => void): unknown {
  if (e instanceof RegistryError) return e;
  const name = (e as { name?: string })?.name ?? '';
  const status = statusOf(e);
  if (THROTTLED.has(name) || status === '503' || status === '429') {
    const header = (e as { $response?: { headers?: Record<string, string> } })?.$response?.headers?.['retry-after'];
    const retryAfter = header && /^\d{1,4}$/.test(header) ? header : '1';
    return new RegistryError(ErrorCode.UNAVAILABLE, 'object storage is busy; retry later', { cause: e, headers: { 'Retry-After': retryAfter } });
  }
  if (DENIED.has(name) || status === '403') {
    const message = e instanceof S3ServiceException ? `${name}: ${e.message}` : String((e as Error)?.message ?? e);
    onDenied(op, message);
    return new Error(`object storage denied ${op} (${name || status}): check storage.s3 credentials and bucket policy`, { cause: e });
  }
  return e;
}
