import type { NextFunction, Request, Response } from 'express';
import type { BatchExecutor } from '../batch/execute';
import type { Config } from '../config';
import { missingFor, noPermissions } from '../domain/permissions';
import type { Principal } from '../domain/principals';
import { ROOT_GROUP } from '../domain/principals';
import { userKey } from '../domain/users';
import type { Logger } from '../log';
import type { Metrics } from '../metrics';
import type { Store } from '../store/store';
import { authenticate, type AuthOptions } from './authenticate';
import type { PasswordChecks } from './password-checks';

export interface AppDeps {
  config: Config;
  store: Store;
  executor: BatchExecutor;
  auth: AuthOptions;
  passwordChecks: PasswordChecks;
  logger: Logger;
  metrics: Metrics;
  /**
   * Told that a batch's answer, whose batch committed events, has been handed to the client: the
   * task runner delivers them from then on, so that the deliveries never delay the answer.
   */
  onEventsAnswered?: () => void;
}

export function requireAuth(deps: AppDeps) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    res.locals.principal = await authenticate(req, deps.auth);
    next();
  };
}

export function principalOf(res: Response): Principal {
  return res.locals.principal as Principal;
}

export function isRootScope(principal: Principal): boolean {
  return principal.scope === ROOT_GROUP && principal.actingUser === undefined;
}

/**
 * SPEC §6 "reading is scoped too": the key of the one user whose record and journal entries a
 * request may read, or undefined when it may read everything of its scope. Only a request that
 * acts as a user (session or X-FlexiBee-Authorization) without manageAll or createUser is
 * narrowed, to that user itself.
 */
export async function readableUserOnly(principal: Principal, store: Store): Promise<string | undefined> {
  if (principal.actingUser === undefined) return undefined;
  // A session may work in a tenant below its user's own group (SPEC §7.5): the user, authenticated
  // already, is looked up wherever it lives, not within the scope it works in.
  const user = await store.findUserRecord(ROOT_GROUP, principal.actingUser);
  // Authentication found the user live a moment ago; one deleted since reads with no rights.
  const held = user && !user.deleted ? user.permissions : noPermissions();
  return missingFor('readOthers', held) === undefined ? undefined : userKey(principal.actingUser);
}
