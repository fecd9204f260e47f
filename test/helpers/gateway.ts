// Types and a starter for the S3-over-RDMA test gateway (scripts/lib/rdma-gateway.mjs, plain
// ESM shared with the benchmark).
// @ts-expect-error plain ESM script without types
import * as untyped from '../../scripts/lib/rdma-gateway.mjs';
import { servers } from './servers.js';

export type Mode =
  'accept' | 'decline' | 'ignore' | 'fail' | 'badtoken' | 'nobytes' | 'noreply' | 'noecho';

export interface LogEntry {
  method: string;
  path: string;
  query: string;
  tokenPresent: boolean;
  tokenSigned: boolean;
  /** The client's address as the gateway saw it. */
  remoteAddress: string | null;
  token: string | null;
  contentLength: number | null;
  bodyBytes: number;
  contentSha256: string | null;
  mode: Mode;
  status: number;
  rdmaReply: number | null;
  rdmaBytes: number | null;
  error: string | null;
  upstreamStatus: number | null;
}

export interface Gateway {
  url: string;
  setMode(mode: Mode): Promise<void>;
  log(): Promise<LogEntry[]>;
  clearLog(): Promise<void>;
  stop(): Promise<void>;
}

export interface SignInput {
  method: string;
  path: string;
  query?: string;
  headers: Record<string, string>;
  payloadHash: string;
  accessKey: string;
  secretKey: string;
  region: string;
  now?: Date;
}

export interface GatewayModule {
  ADDON_PATH: string;
  startRdmaGateway(opts: {
    target: string;
    accessKey: string;
    secretKey: string;
    region: string;
    mode?: Mode;
  }): Promise<Gateway>;
  signRequest(input: SignInput): Record<string, string>;
  verifyRequest(input: {
    method: string;
    url: string;
    headers: Record<string, string | string[]>;
    accessKey: string;
    secretKey: string;
    region: string;
  }): { ok: boolean; code?: string; signedHeaders?: string[] };
}

export const gatewayModule = untyped as GatewayModule;

/** A gateway in front of the test MinIO, in its own process. */
export function startGateway(mode: Mode = 'accept'): Promise<Gateway> {
  const s = servers().s3;
  return gatewayModule.startRdmaGateway({
    target: s.endpoint,
    accessKey: s.accessKeyId,
    secretKey: s.secretAccessKey,
    region: s.region,
    mode,
  });
}
