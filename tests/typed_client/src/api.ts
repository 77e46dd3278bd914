// A minimal typed client of /api/v1: every request and answer typed from the generated
// document (generated/api.d.ts, written by tests/system/test_typed_client.py), nothing by hand.
import type { components, paths } from "../generated/api";

export type Schemas = components["schemas"];

type Json<R> = R extends { content: { "application/json": infer T } } ? T : never;

/** The JSON answer of an operation's success (200 or 201). */
export type Ok<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends {
  responses: infer R;
}
  ? R extends { 200: infer A }
    ? Json<A>
    : R extends { 201: infer A }
      ? Json<A>
      : never
  : never;

/** The JSON body an operation takes. */
export type Body<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends {
  requestBody?: { content: { "application/json": infer B } };
}
  ? B
  : never;

/** The query an operation takes. */
export type Query<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends {
  parameters: { query?: infer Q };
}
  ? NonNullable<Q>
  : never;

/** Every error answer of the API: {"error": {"code", "message", "details"}}. */
export type ApiError = Schemas["Error"];

export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiError,
    readonly retryAfter: number | null,
  ) {
    super(body.error.message);
  }
}

export interface Session {
  base: string;
  token: string | null;
}

async function send<T>(
  session: Session,
  method: string,
  path: string,
  body?: unknown,
  query?: Record<string, string | number | boolean | undefined>,
): Promise<T> {
  const url = new URL(session.base + path);
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined) url.searchParams.set(key, String(value));
  }
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (session.token !== null) headers.Authorization = `Bearer ${session.token}`;
  const init: RequestInit = { method, headers };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(url, init);
  if (!response.ok) {
    const retry = response.headers.get("Retry-After");
    throw new ApiFailure(
      response.status,
      (await response.json()) as ApiError,
      retry === null ? null : Number(retry),
    );
  }
  return (await response.json()) as T;
}

/** GET a path of the document. */
export function get<P extends keyof paths>(
  session: Session,
  path: P,
  query?: Query<P, "get" & keyof paths[P]>,
  concrete?: string,
): Promise<Ok<P, "get" & keyof paths[P]>> {
  return send(session, "GET", concrete ?? path, undefined, query as Record<string, string>);
}

/** POST to a path of the document. */
export function post<P extends keyof paths>(
  session: Session,
  path: P,
  body: Body<P, "post" & keyof paths[P]>,
  concrete?: string,
): Promise<Ok<P, "post" & keyof paths[P]>> {
  return send(session, "POST", concrete ?? path, body);
}
