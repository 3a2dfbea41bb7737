-- A rep's visit conversations and their Medical requests (issue 20, point 1).
--
-- A conversation is one HCP visit: its turns are the rep's questions in
-- order, each with the question as typed and as resolved against the turn
-- before (a follow-up such as "and how often after that?" inherits the
-- previous turn's product and topic). Only its owner continues it.
--
-- An ask routed to Medical Information opens no case by itself: it leaves a
-- pending medical request, which the rep confirms (with the HCP's words,
-- consent to be contacted and the channel: the MIR case is opened then) or
-- dismisses with a reason. Both decisions are audited. Nothing here is ever
-- deleted.

CREATE TABLE conversations (
    id         TEXT PRIMARY KEY,             -- 'cv-' + 24 hex characters, random
    owner      TEXT NOT NULL,                -- the rep's user id
    hcp        TEXT,                         -- the HCP of the visit, as last given
    created_at TEXT NOT NULL,                -- RFC 3339 UTC, millisecond, fixed width: sorts as text
    updated_at TEXT NOT NULL
) STRICT;

CREATE INDEX conversations_by_owner ON conversations (owner, updated_at);

CREATE TABLE conversation_turns (
    conversation_id   TEXT    NOT NULL REFERENCES conversations (id),
    n                 INTEGER NOT NULL,      -- 1, 2, 3, … within the conversation
    at                TEXT    NOT NULL,
    question          TEXT    NOT NULL,      -- as typed
    resolved_question TEXT    NOT NULL,      -- as screened and answered
    product           TEXT,                  -- the product answered for
    topic             TEXT    NOT NULL,      -- the topic terms carried forward, space-separated
    route             TEXT    NOT NULL,      -- answer | medical | pharmacovigilance | refused
    answer            TEXT    NOT NULL,
    audit_id          INTEGER,               -- the ask's audit record
    case_id           TEXT,                  -- a case opened at once (PV)
    medical_request   TEXT,                  -- the pending request it left, if any
    PRIMARY KEY (conversation_id, n)
) STRICT;

CREATE TABLE medical_requests (
    id                TEXT PRIMARY KEY,      -- 'mr-' + 24 hex characters, random
    owner             TEXT NOT NULL,         -- the rep who asked
    conversation_id   TEXT REFERENCES conversations (id),
    turn              INTEGER,
    question          TEXT NOT NULL,         -- the resolved question that was routed
    typed_question    TEXT NOT NULL,
    product           TEXT,
    hcp               TEXT,                  -- as given with the ask
    summary           TEXT NOT NULL,         -- what will be sent, in one line
    flags_json        TEXT NOT NULL CHECK (json_valid(flags_json)),
    audit_id          INTEGER,               -- the ask's audit record
    state             TEXT NOT NULL CHECK (state IN ('pending', 'confirmed', 'dismissed')),
    created_at        TEXT NOT NULL,
    decided_at        TEXT,
    case_id           TEXT,                  -- the MIR case opened on confirmation
    request_text      TEXT,                  -- the request in the HCP's words, as confirmed
    confirmed_hcp     TEXT,
    consent           INTEGER CHECK (consent IN (0, 1)),
    contact_channel   TEXT,
    contact_address   TEXT,
    dismiss_reason    TEXT
) STRICT;

CREATE INDEX medical_requests_by_owner ON medical_requests (owner, state, created_at);

CREATE TRIGGER conversations_never_deleted BEFORE DELETE ON conversations
BEGIN
    SELECT RAISE(ABORT, 'conversations are never deleted');
END;

CREATE TRIGGER conversation_turns_no_update BEFORE UPDATE ON conversation_turns
BEGIN
    SELECT RAISE(ABORT, 'conversation turns are append-only');
END;

CREATE TRIGGER conversation_turns_no_delete BEFORE DELETE ON conversation_turns
BEGIN
    SELECT RAISE(ABORT, 'conversation turns are append-only');
END;

CREATE TRIGGER medical_requests_never_deleted BEFORE DELETE ON medical_requests
BEGIN
    SELECT RAISE(ABORT, 'medical requests are never deleted');
END;
