"""The SQLite schema (version 1) and the migrations after it, keyed by the version each makes.

SQL text only: nothing here opens, locks or runs anything (sqlite.py applies it under the write
lock); a shipped migration is never edited, a change is a new version.
"""

SCHEMA = """
CREATE TABLE episodes (
  episode TEXT PRIMARY KEY, source TEXT NOT NULL, fingerprint TEXT NOT NULL,
  alertname TEXT NOT NULL, labels TEXT NOT NULL, starts_at TEXT NOT NULL,
  first_seen TEXT NOT NULL, resolved_at TEXT
);
CREATE TABLE decisions (
  id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, policy TEXT NOT NULL,
  source TEXT NOT NULL, alertname TEXT NOT NULL, fingerprint TEXT NOT NULL,
  episode TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL,
  outcome TEXT NOT NULL, reason TEXT NOT NULL, approval_id TEXT, repeats INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE claims (
  policy TEXT NOT NULL, episode TEXT NOT NULL, decision_id INTEGER NOT NULL,
  outcome TEXT NOT NULL, provisional INTEGER NOT NULL, action TEXT NOT NULL,
  target TEXT NOT NULL, dedup_decision_id INTEGER, PRIMARY KEY (policy, episode)
);
CREATE TABLE actions (
  id INTEGER PRIMARY KEY AUTOINCREMENT, decision_id INTEGER NOT NULL, policy TEXT NOT NULL,
  type TEXT NOT NULL, target TEXT NOT NULL, params TEXT NOT NULL, dry_run INTEGER NOT NULL,
  state TEXT NOT NULL, created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT,
  reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX actions_policy_target ON actions (policy, target, created_at);
CREATE INDEX actions_created ON actions (created_at);
CREATE INDEX actions_state ON actions (state);
CREATE TABLE approvals (
  id TEXT PRIMARY KEY, decision_id INTEGER NOT NULL, policy TEXT NOT NULL, action TEXT NOT NULL,
  target TEXT NOT NULL, params TEXT NOT NULL, episode TEXT NOT NULL, state TEXT NOT NULL,
  requested_at TEXT NOT NULL, expires_at TEXT NOT NULL, required INTEGER NOT NULL,
  approvers TEXT NOT NULL, approved_by TEXT NOT NULL, decided_by TEXT
);
CREATE INDEX approvals_episode ON approvals (episode, state);
CREATE TABLE flags (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# Schema changes after version 1, applied in order to an existing store.
MIGRATIONS = {
    2: "CREATE TABLE cycles (grp TEXT PRIMARY KEY, generation INTEGER NOT NULL, "
    "open INTEGER NOT NULL);",
    # What an approval message shows, where it was posted, and who was refused.
    3: "ALTER TABLE approvals ADD COLUMN context TEXT NOT NULL DEFAULT '{}'; "
    "ALTER TABLE approvals ADD COLUMN slack_channel TEXT; "
    "ALTER TABLE approvals ADD COLUMN slack_ts TEXT; "
    "CREATE TABLE approval_events (id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, "
    "approval_id TEXT NOT NULL, who TEXT NOT NULL, event TEXT NOT NULL, detail TEXT NOT NULL);",
    # Action leases: which process holds an action and when it last said it is alive.
    4: "ALTER TABLE actions ADD COLUMN owner TEXT NOT NULL DEFAULT ''; "
    "ALTER TABLE actions ADD COLUMN heartbeat_at TEXT;",
    # Retention: when an episode was last seen (what keeps its claim from a prune), and the
    # indexes a prune's "is anything still pointing at it" checks need. An episode recorded
    # before this version counts as seen now: its repeats were never stamped, so it keeps
    # its claim for a whole retention window after the upgrade rather than lose it early.
    5: "ALTER TABLE episodes ADD COLUMN last_seen TEXT; "
    "UPDATE episodes SET last_seen = strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'); "
    "CREATE INDEX claims_episode ON claims (episode); "
    "CREATE INDEX claims_decision ON claims (decision_id); "
    "CREATE INDEX claims_dedup ON claims (dedup_decision_id); "
    "CREATE INDEX actions_decision ON actions (decision_id); "
    "CREATE INDEX approvals_decision ON approvals (decision_id); "
    "CREATE INDEX approval_events_approval ON approval_events (approval_id, id);",
    # Window counts per policy and per kind (live or dry run) read an index range bounded
    # by the limit, never the history (core/guards.py Facts).
    6: "CREATE INDEX actions_policy_created ON actions (policy, created_at); "
    "CREATE INDEX actions_dry_created ON actions (dry_run, created_at);",
    # What an executor reports beside the reason (docker.exec: exit codes, output tails).
    # and which rung of an escalation ladder a decision is (NULL: a policy of one action).
    7: "ALTER TABLE actions ADD COLUMN result TEXT NOT NULL DEFAULT '{}'; "
    "ALTER TABLE decisions ADD COLUMN step INTEGER;",
    # Per-minute action counters: window counts read a minute's row, not its actions
    # (store/facts.py), counted from the actions already there.
    8: "CREATE TABLE action_counts (policy TEXT NOT NULL, dry_run INTEGER NOT NULL, "
    "minute TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (policy, dry_run, minute)); "
    "INSERT INTO action_counts (policy, dry_run, minute, n) "
    "SELECT policy, dry_run, substr(created_at, 1, 16) || ':00.000000Z', count(*) "
    "FROM actions GROUP BY 1, 2, 3; "
    "INSERT INTO action_counts (policy, dry_run, minute, n) "
    "SELECT '', dry_run, substr(created_at, 1, 16) || ':00.000000Z', count(*) "
    "FROM actions GROUP BY 2, 3;",
    # The audit API: each filter of a decisions page an index range in page order (id), and
    # the operator-events journal (who approved, denied, paused, resumed, reset, reloaded).
    9: "CREATE INDEX decisions_policy ON decisions (policy, id); "
    "CREATE INDEX decisions_outcome ON decisions (outcome, id); "
    "CREATE INDEX decisions_target ON decisions (target, id); "
    "CREATE INDEX decisions_time ON decisions (time, id); "
    "CREATE TABLE operator_events (id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, "
    "who TEXT NOT NULL, act TEXT NOT NULL, policy TEXT, decision_id INTEGER, approval_id TEXT, "
    "detail TEXT NOT NULL); "
    "CREATE INDEX operator_events_who ON operator_events (who, id); "
    "CREATE INDEX operator_events_act ON operator_events (act, id); "
    "CREATE INDEX operator_events_policy ON operator_events (policy, id); "
    "CREATE INDEX operator_events_time ON operator_events (time, id); "
    "CREATE INDEX operator_events_decision ON operator_events (decision_id, id);",
    # Honest budgets (10) and re-deciding held episodes. `reached`: FALSE once an action provably
    # never reached its target (refused before sending, held when its turn came, interrupted
    # before it started); such an action counts toward no cooldown or rate limit, so the
    # counters are counted again without them. An episode's annotations and generator URL:
    # what resume and reset need to decide it again (NULL for those recorded before: they
    # wait for their next repeat). A partial index finds the held claims.
    10: "ALTER TABLE actions ADD COLUMN reached INTEGER NOT NULL DEFAULT 1; "
    "UPDATE actions SET reached = 0 WHERE state IN ('paused', 'tripped', 'cooldown') "
    "OR (state = 'interrupted' AND started_at IS NULL); "
    "ALTER TABLE episodes ADD COLUMN annotations TEXT; "
    "ALTER TABLE episodes ADD COLUMN generator_url TEXT NOT NULL DEFAULT ''; "
    "CREATE INDEX claims_held ON claims (policy) WHERE provisional; "
    "DELETE FROM action_counts; "
    "INSERT INTO action_counts (policy, dry_run, minute, n) "
    "SELECT policy, dry_run, substr(created_at, 1, 16) || ':00.000000Z', count(*) "
    "FROM actions WHERE reached GROUP BY 1, 2, 3; "
    "INSERT INTO action_counts (policy, dry_run, minute, n) "
    "SELECT '', dry_run, substr(created_at, 1, 16) || ':00.000000Z', count(*) "
    "FROM actions WHERE reached GROUP BY 2, 3;",
}
