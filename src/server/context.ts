import type { NextFunction, Request, Response } from 'express';
import type { BatchExecutor } from '../batch/execute';
import type { Config } from '../config';
import type { Principal } from '../domain/principals';
import { ROOT_GROUP } from '../domain/principals';
import type { Logger } from '../log';
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
