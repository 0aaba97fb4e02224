import type { Router } from 'express';
import { missingFor, noPermissions } from '../../domain/permissions';
import { subscriptionView } from '../../domain/webhooks';
import { FlexiError } from '../../errors';
import { sendAnswer } from '../answer';
import { principalOf, requireAuth, type AppDeps } from '../context';

/**
 * `GET /subscriptions.json` (SPEC §10.2): the webhook subscriptions of the caller's scope with their
 * delivery state, never a secret. A caller acting as a user needs what changing them needs
 * (manageAll): the list names the partners' endpoints.
 */
export function subscriptionRoutes(router: Router, deps: AppDeps): void {
  router.get('/subscriptions.json', requireAuth(deps), async (_req, res) => {
    const principal = principalOf(res);
    if (principal.actingUser !== undefined) {
      const user = await deps.store.findUserRecord(principal.scope, principal.actingUser);
      const held = user && !user.deleted ? user.permissions : noPermissions();
      if (missingFor('manageSubscriptions', held) !== undefined) {
        throw new FlexiError('forbidden', 'Reading the webhook subscriptions needs the permission manageAll.');
      }
    }
    const listed = await deps.store.listSubscriptions(principal.scope);
    const subscriptions = listed.map((s) => subscriptionView(s, s.waiting, deps.config.webhookSecretOverlapMs));
    sendAnswer(res, { type: 'application/json', body: `${JSON.stringify({ subscriptions })}\n` });
  });
}
