/**
 * The firebase-admin messaging client, built the same way in production, `make dev` and tests:
 * HTTP/1.1 through an https agent of ours (firebase-admin's HTTP/2 transport has no hook for the host
 * or the trusted CA). Against an emulator only the agent's destination, its trusted CA and the
 * credential differ: the agent dials the emulator while TLS still names fcm.googleapis.com, so the
 * library's request path is exactly the production one.
 */
import { randomUUID } from 'node:crypto';
import { Agent } from 'node:https';
import {
  applicationDefault,
  type Credential,
  deleteApp,
  type GoogleOAuthAccessToken,
  initializeApp,
} from 'firebase-admin/app';
import { type BatchResponse, getMessaging, type MulticastMessage } from 'firebase-admin/messaging';

export const FCM_HOST = 'fcm.googleapis.com';

export interface FcmEmulatorTarget {
  host: string;
  port: number;
  /** PEM of the CA that signed the emulator's certificate for fcm.googleapis.com. */
  ca: string;
}

export interface FcmClientOptions {
  projectId: string;
  /** Where to send instead of fcm.googleapis.com; absent in production. */
  emulator?: FcmEmulatorTarget;
  /** Concurrent connections to FCM; sendEachForMulticast sends one request per token. */
  maxSockets?: number;
}

export interface FcmClient {
  sendEachForMulticast(message: MulticastMessage): Promise<BatchResponse>;
  close(): Promise<void>;
}

/** An emulator accepts any bearer token; a fixed one keeps Google's token endpoint out of tests. */
const emulatorCredential: Credential = {
  getAccessToken: async (): Promise<GoogleOAuthAccessToken> => ({
    access_token: 'emulator',
    expires_in: 3600,
  }),
};

function agentFor(options: FcmClientOptions): Agent {
  const { emulator, maxSockets = 64 } = options;
  const agent = new Agent({ keepAlive: true, maxSockets });
  if (emulator) {
    // The agent's own connect with the destination swapped keeps its TLS session reuse and pooling.
    const connectTo = agent.createConnection.bind(agent);
    agent.createConnection = (options, callback) =>
      connectTo(
        { ...options, host: emulator.host, port: emulator.port, servername: FCM_HOST, ca: emulator.ca },
        callback,
      );
  }
  return agent;
}

export function createFcmClient(options: FcmClientOptions): FcmClient {
  const httpAgent = agentFor(options);
  const app = initializeApp(
    {
      projectId: options.projectId,
      credential: options.emulator ? emulatorCredential : applicationDefault(httpAgent),
      httpAgent,
    },
    `push-${randomUUID()}`,
  );
  const messaging = getMessaging(app);
  messaging.enableLegacyHttpTransport();
  return {
    sendEachForMulticast: (message) => messaging.sendEachForMulticast(message),
    async close() {
      await deleteApp(app);
      httpAgent.destroy();
    },
  };
}
