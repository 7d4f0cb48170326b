"""The PostgreSQL schema (version 4) and the migrations after it, keyed by the version each makes.

SQL text only: nothing here connects, locks or runs anything (postgres.py applies it under
the migration lock); a shipped migration is never edited, a change is a new version.
"""

SCHEMA = """
CREATE TABLE remediator_schema (version INTEGER NOT NULL);
CREATE TABLE episodes (
  episode TEXT PRIMARY KEY, source TEXT NOT NULL, fingerprint TEXT NOT NULL,
  alertname TEXT NOT NULL, labels TEXT NOT NULL, starts_at TIMESTAMPTZ NOT NULL,
  first_seen TIMESTAMPTZ NOT NULL, resolved_at TIMESTAMPTZ
);
CREATE TABLE decisions (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, time TIMESTAMPTZ NOT NULL,
  policy TEXT NOT NULL, source TEXT NOT NULL, alertname TEXT NOT NULL,
  fingerprint TEXT NOT NULL, episode TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL,
  outcome TEXT NOT NULL, reason TEXT NOT NULL, approval_id TEXT,
  repeats INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE claims (
  policy TEXT NOT NULL, episode TEXT NOT NULL, decision_id BIGINT NOT NULL,
  outcome TEXT NOT NULL, provisional BOOLEAN NOT NULL, action TEXT NOT NULL,
  target TEXT NOT NULL, dedup_decision_id BIGINT, PRIMARY KEY (policy, episode)
);
CREATE TABLE actions (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, decision_id BIGINT NOT NULL,
  policy TEXT NOT NULL, type TEXT NOT NULL, target TEXT NOT NULL, params TEXT NOT NULL,
  dry_run BOOLEAN NOT NULL, state TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL,
  started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, reason TEXT NOT NULL DEFAULT '',
  owner TEXT NOT NULL DEFAULT '', heartbeat_at TIMESTAMPTZ
);
CREATE INDEX actions_policy_target ON actions (policy, target, created_at);
CREATE INDEX actions_created ON actions (created_at);
CREATE INDEX actions_unfinished ON actions (heartbeat_at) WHERE state IN ('pending', 'running');
CREATE TABLE approvals (
  id TEXT PRIMARY KEY, decision_id BIGINT NOT NULL, policy TEXT NOT NULL, action TEXT NOT NULL,
  target TEXT NOT NULL, params TEXT NOT NULL, episode TEXT NOT NULL, state TEXT NOT NULL,
  requested_at TIMESTAMPTZ NOT NULL, expires_at TIMESTAMPTZ NOT NULL, required INTEGER NOT NULL,
  approvers TEXT NOT NULL, approved_by TEXT NOT NULL, decided_by TEXT,
  context TEXT NOT NULL DEFAULT '{}', slack_channel TEXT, slack_ts TEXT
);
CREATE INDEX approvals_episode ON approvals (episode, state);
CREATE INDEX approvals_action ON approvals (decision_id);
CREATE TABLE flags (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE cycles (grp TEXT PRIMARY KEY, generation INTEGER NOT NULL, open BOOLEAN NOT NULL);
CREATE TABLE approval_events (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, time TIMESTAMPTZ NOT NULL,
  approval_id TEXT NOT NULL, who TEXT NOT NULL, event TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE INDEX approval_events_approval ON approval_events (approval_id, id);
"""
# The first PostgreSQL schema is version 4 (SQLite's 1-3 predate this store). Later
# versions add their statements here, keyed by the version they produce.
FIRST_VERSION = 4
MIGRATIONS: dict[int, str] = {
    # As SQLite's 9: the audit API's page indexes and the operator-events journal.
    9: """
CREATE INDEX decisions_policy ON decisions (policy, id);
CREATE INDEX decisions_outcome ON decisions (outcome, id);
CREATE INDEX decisions_target ON decisions (target, id);
CREATE INDEX decisions_time ON decisions (time, id);
CREATE TABLE operator_events (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, time TIMESTAMPTZ NOT NULL,
  who TEXT NOT NULL, act TEXT NOT NULL, policy TEXT, decision_id BIGINT, approval_id TEXT,
  detail TEXT NOT NULL
);
CREATE INDEX operator_events_who ON operator_events (who, id);
CREATE INDEX operator_events_act ON operator_events (act, id);
CREATE INDEX operator_events_policy ON operator_events (policy, id);
CREATE INDEX operator_events_time ON operator_events (time, id);
CREATE INDEX operator_events_decision ON operator_events (decision_id, id);
""",
    # As SQLite's 10: whether an action may have reached its target (the counters counted
    # again without those that never did), an episode's annotations and generator URL, and
    # the held claims' index.
    10: """
ALTER TABLE actions ADD COLUMN reached BOOLEAN NOT NULL DEFAULT TRUE;
UPDATE actions SET reached = FALSE WHERE state IN ('paused', 'tripped', 'cooldown')
  OR (state = 'interrupted' AND started_at IS NULL);
ALTER TABLE episodes ADD COLUMN annotations TEXT;
ALTER TABLE episodes ADD COLUMN generator_url TEXT NOT NULL DEFAULT '';
CREATE INDEX claims_held ON claims (policy) WHERE provisional;
DELETE FROM action_counts;
INSERT INTO action_counts (policy, dry_run, minute, n)
SELECT policy, dry_run, date_trunc('minute', created_at), count(*) FROM actions WHERE reached
GROUP BY 1, 2, 3;
INSERT INTO action_counts (policy, dry_run, minute, n)
SELECT '', dry_run, date_trunc('minute', created_at), count(*) FROM actions WHERE reached
GROUP BY 2, 3;
""",
    # As SQLite's 8: per-minute action counters, counted from the actions already there.
    8: """
CREATE TABLE action_counts (
  policy TEXT NOT NULL, dry_run BOOLEAN NOT NULL, minute TIMESTAMPTZ NOT NULL,
  n BIGINT NOT NULL, PRIMARY KEY (policy, dry_run, minute)
);
INSERT INTO action_counts (policy, dry_run, minute, n)
SELECT policy, dry_run, date_trunc('minute', created_at), count(*) FROM actions GROUP BY 1, 2, 3;
INSERT INTO action_counts (policy, dry_run, minute, n)
SELECT '', dry_run, date_trunc('minute', created_at), count(*) FROM actions GROUP BY 2, 3;
""",
    # As SQLite's 7: what an executor reports beside the reason; a decision's ladder rung.
    7: "ALTER TABLE actions ADD COLUMN result TEXT NOT NULL DEFAULT '{}'; "
    "ALTER TABLE decisions ADD COLUMN step INTEGER;",
    # As SQLite's 6: window counts read an index range bounded by the limit.
    6: """
CREATE INDEX actions_policy_created ON actions (policy, created_at);
CREATE INDEX actions_dry_created ON actions (dry_run, created_at);
""",
    # Retention (as SQLite's 5): when an episode was last seen, and the indexes a prune's
    # "is anything still pointing at it" checks need. An episode recorded before this version
    # counts as seen now, so it keeps its claim a whole retention window after the upgrade.
    5: """
ALTER TABLE episodes ADD COLUMN last_seen TIMESTAMPTZ;
UPDATE episodes SET last_seen = clock_timestamp();
CREATE INDEX claims_episode ON claims (episode);
CREATE INDEX claims_decision ON claims (decision_id);
CREATE INDEX claims_dedup ON claims (dedup_decision_id);
CREATE INDEX actions_decision ON actions (decision_id);
""",
}
