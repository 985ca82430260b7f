-- prep_behavior_event_scope: each stored event once per scope it counts for. The one definition of the scope rule:
--   instance  : scope_id = instance_id, for events that carry one (self-managed backend events, also gitlab.com's own).
--   namespace : scope_id = ultimate_parent_namespace_id, else namespace_id (decimal text), for SaaS events only
--               (realm 'saas' or deployment_type '.com'): self-managed namespace ids are local to their instance.
--   saas      : scope_id = 'all', every SaaS event (users of gitlab.com as a whole, also those outside a namespace).
-- Class: Orange (user hashes per customer namespace / instance).
CREATE VIEW IF NOT EXISTS prep_behavior_event_scope AS
SELECT
    behavior_date,
    tupleElement(event_scope, 1) AS scope,
    tupleElement(event_scope, 2) AS scope_id,
    event_type,
    event_category,
    event_action,
    user_hash
FROM fct_behavior_structured_event FINAL
ARRAY JOIN arrayFilter(
    s -> tupleElement(s, 2) != '',
    [
        ('instance', instance_id),
        ('namespace', if((realm = 'saas' OR deployment_type = '.com')
                         AND if(ultimate_parent_namespace_id != 0, ultimate_parent_namespace_id, namespace_id) != 0,
                         toString(if(ultimate_parent_namespace_id != 0, ultimate_parent_namespace_id, namespace_id)), '')),
        ('saas', if(realm = 'saas' OR deployment_type = '.com', 'all', ''))
    ]) AS event_scope
COMMENT 'Orange. Grain: one row per Snowplow event x scope it counts for (namespace, instance, saas), with the user hash.';
