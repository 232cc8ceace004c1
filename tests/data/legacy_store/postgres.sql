--
-- PostgreSQL database dump
--


-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: audit_entries_append_only(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.audit_entries_append_only() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        RAISE EXCEPTION 'audit_entries is append-only: % refused', TG_OP
            USING ERRCODE = 'restrict_violation';
    END
    $$;


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: alert_messages; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.alert_messages (
    id bigint NOT NULL,
    group_hash character varying(64) NOT NULL,
    group_key text NOT NULL,
    channel character varying(64) NOT NULL,
    alerts text NOT NULL,
    group_labels json NOT NULL,
    external_url text NOT NULL,
    receiver text NOT NULL,
    truncated_alerts integer NOT NULL,
    first_fired_at timestamp with time zone NOT NULL,
    silence json,
    version integer NOT NULL,
    pending boolean NOT NULL,
    pending_since timestamp with time zone,
    parent_ts character varying(32),
    sent_version integer NOT NULL,
    updated_version integer NOT NULL,
    sent_alerts json NOT NULL,
    sent_silence text,
    expired_failing json NOT NULL,
    attempts integer NOT NULL,
    not_before timestamp with time zone,
    last_error text,
    claimed_by character varying(64),
    claimed_until timestamp with time zone,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL
);


--
-- Name: alert_messages_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.alert_messages_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: alert_messages_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.alert_messages_id_seq OWNED BY public.alert_messages.id;


--
-- Name: alert_notifications; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.alert_notifications (
    id bigint NOT NULL,
    dedup_key character varying(64) NOT NULL,
    group_key text NOT NULL,
    received_at timestamp with time zone NOT NULL,
    channels json NOT NULL,
    payload text NOT NULL
);


--
-- Name: alert_notifications_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.alert_notifications_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: alert_notifications_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.alert_notifications_id_seq OWNED BY public.alert_notifications.id;


--
-- Name: audit_entries; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.audit_entries (
    id bigint NOT NULL,
    at timestamp with time zone NOT NULL,
    actor character varying(64) NOT NULL,
    action character varying(64) NOT NULL,
    environment character varying(63),
    target character varying(512),
    outcome character varying(32) NOT NULL,
    details text NOT NULL,
    prev_hash character varying(64) NOT NULL,
    hash character varying(64) NOT NULL
);


--
-- Name: backup_environments; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.backup_environments (
    backup_id character varying(40) NOT NULL,
    environment character varying(63) NOT NULL,
    ok boolean NOT NULL,
    finished_at timestamp with time zone NOT NULL,
    objects integer NOT NULL,
    error text
);


--
-- Name: backups; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.backups (
    id character varying(40) NOT NULL,
    started_at timestamp with time zone NOT NULL,
    finished_at timestamp with time zone NOT NULL,
    trigger character varying(20) NOT NULL,
    actor character varying(64) NOT NULL,
    summary json NOT NULL,
    stored json NOT NULL,
    manifest bytea
);


--
-- Name: evidence_packs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.evidence_packs (
    id bigint NOT NULL,
    month character varying(7) NOT NULL,
    created_at timestamp with time zone NOT NULL,
    actor character varying(64) NOT NULL,
    head_id bigint,
    head_hash character varying(64),
    stored json NOT NULL
);


--
-- Name: evidence_packs_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.evidence_packs_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: evidence_packs_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.evidence_packs_id_seq OWNED BY public.evidence_packs.id;


--
-- Name: exception_reminders; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.exception_reminders (
    request_id character varying(16) NOT NULL,
    days integer NOT NULL,
    sent_at timestamp with time zone NOT NULL
);


--
-- Name: exception_requests; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.exception_requests (
    id character varying(16) NOT NULL,
    state character varying(16) NOT NULL,
    environment character varying(63) NOT NULL,
    policy character varying(320) NOT NULL,
    policy_kind character varying(64) NOT NULL,
    scope json NOT NULL,
    justification text NOT NULL,
    days integer NOT NULL,
    requester character varying(32) NOT NULL,
    requester_channel character varying(32),
    created_at timestamp with time zone NOT NULL,
    jira_key character varying(32),
    ticket character varying(32),
    approver character varying(32),
    claimed_at timestamp with time zone,
    decided_at timestamp with time zone,
    expires_at timestamp with time zone,
    exception_name character varying(253),
    exception_namespace character varying(63),
    exception_group character varying(64),
    approval_channel character varying(32),
    approval_ts character varying(32),
    deny_reason text,
    error text,
    ended_at timestamp with time zone,
    ended_by character varying(32),
    renewal_of character varying(16),
    reviewed_at timestamp with time zone,
    reviewed_by character varying(32),
    version integer NOT NULL
);


--
-- Name: exception_review_items; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.exception_review_items (
    review_id bigint NOT NULL,
    request_id character varying(16) NOT NULL,
    "position" integer NOT NULL,
    ticket_status character varying(64),
    decision character varying(16),
    decided_by character varying(32),
    decided_at timestamp with time zone
);


--
-- Name: exception_reviews; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.exception_reviews (
    id bigint NOT NULL,
    created_at timestamp with time zone NOT NULL,
    channel character varying(32),
    ts character varying(32)
);


--
-- Name: exception_reviews_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.exception_reviews_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: exception_reviews_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.exception_reviews_id_seq OWNED BY public.exception_reviews.id;


--
-- Name: notices; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.notices (
    id bigint NOT NULL,
    dedup_key character varying(200),
    channel character varying(64) NOT NULL,
    thread_ts character varying(32),
    text text NOT NULL,
    blocks json,
    state character varying(16) NOT NULL,
    attempts integer NOT NULL,
    not_before timestamp with time zone,
    claimed_by character varying(64),
    claimed_until timestamp with time zone,
    created_at timestamp with time zone NOT NULL,
    sent_at timestamp with time zone,
    sent_ts character varying(32),
    error text
);


--
-- Name: notices_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.notices_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: notices_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.notices_id_seq OWNED BY public.notices.id;


--
-- Name: promotion_plans; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.promotion_plans (
    id character varying(16) NOT NULL,
    created_at timestamp with time zone NOT NULL,
    requested_by character varying(64) NOT NULL,
    channel character varying(64) NOT NULL,
    message_ts character varying(32),
    kind character varying(64) NOT NULL,
    policy character varying(512) NOT NULL,
    target_stage character varying(80) NOT NULL,
    blocked boolean NOT NULL,
    state character varying(16) NOT NULL,
    body json NOT NULL,
    decided_by character varying(64),
    decided_at timestamp with time zone,
    override_by character varying(64),
    override_reason text,
    superseded_by character varying(16),
    result json
);


--
-- Name: promotion_records; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.promotion_records (
    id bigint NOT NULL,
    at timestamp with time zone NOT NULL,
    environment character varying(63) NOT NULL,
    kind character varying(64) NOT NULL,
    policy character varying(512) NOT NULL,
    stage character varying(80) NOT NULL,
    action character varying(16) NOT NULL,
    actor character varying(64) NOT NULL,
    plan_id character varying(16),
    resource_version character varying(64) NOT NULL
);


--
-- Name: promotion_records_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.promotion_records_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: promotion_records_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.promotion_records_id_seq OWNED BY public.promotion_records.id;


--
-- Name: restore_plans; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.restore_plans (
    id character varying(40) NOT NULL,
    backup_id character varying(40) NOT NULL,
    environment character varying(63) NOT NULL,
    source text NOT NULL,
    requested_by character varying(64) NOT NULL,
    created_at timestamp with time zone NOT NULL,
    state character varying(20) NOT NULL,
    items json NOT NULL,
    decided_by character varying(64),
    decided_at timestamp with time zone,
    result json
);


--
-- Name: scheduled_runs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.scheduled_runs (
    job character varying(100) NOT NULL,
    slot character varying(40) NOT NULL,
    claimed_at timestamp with time zone NOT NULL,
    claimed_by character varying(100) NOT NULL,
    finished_at timestamp with time zone,
    outcome character varying(200)
);


--
-- Name: schema_migrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schema_migrations (
    version integer NOT NULL,
    name character varying(200) NOT NULL,
    applied_at timestamp with time zone NOT NULL
);


--
-- Name: alert_messages id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alert_messages ALTER COLUMN id SET DEFAULT nextval('public.alert_messages_id_seq'::regclass);


--
-- Name: alert_notifications id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alert_notifications ALTER COLUMN id SET DEFAULT nextval('public.alert_notifications_id_seq'::regclass);


--
-- Name: evidence_packs id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.evidence_packs ALTER COLUMN id SET DEFAULT nextval('public.evidence_packs_id_seq'::regclass);


--
-- Name: exception_reviews id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.exception_reviews ALTER COLUMN id SET DEFAULT nextval('public.exception_reviews_id_seq'::regclass);


--
-- Name: notices id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.notices ALTER COLUMN id SET DEFAULT nextval('public.notices_id_seq'::regclass);


--
-- Name: promotion_records id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.promotion_records ALTER COLUMN id SET DEFAULT nextval('public.promotion_records_id_seq'::regclass);


--
-- Data for Name: alert_messages; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.alert_messages VALUES (1, 'cab700c7650157788368cbde49b7d15bb7a52750dc639d16ff321eff164cf15e', '{}:{alertname="PolicyViolation"}', 'C0ALERTS', '{"0123456789abcdef":{"status":"firing","labels":{"alertname":"PolicyViolation","severity":"warning"},"annotations":{"summary":"a policy fails"},"startsAt":"2026-12-01T08:55:00Z","endsAt":null,"generatorURL":"http://prometheus.example/graph","fingerprint":"0123456789abcdef"}}', '{"alertname": "PolicyViolation"}', 'http://alertmanager.example:9093', 'policy-bot', 0, '2026-12-01 08:55:00+00', 'null', 1, true, '2026-12-01 09:00:15+00', NULL, 0, 0, '{}', NULL, '[]', 0, NULL, NULL, NULL, NULL, '2026-12-01 09:00:15+00', '2026-12-01 09:00:15+00');


--
-- Data for Name: alert_notifications; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.alert_notifications VALUES (1, '7b9e02eec8d8cf2d7829facb0044b4dbb09d406079aab82a539721c7b8018035', '{}:{alertname="PolicyViolation"}', '2026-12-01 09:00:15+00', '["C0ALERTS"]', '{"version": "4", "groupKey": "{}:{alertname=\"PolicyViolation\"}", "truncatedAlerts": 0, "status": "firing", "receiver": "policy-bot", "groupLabels": {"alertname": "PolicyViolation"}, "commonLabels": {"alertname": "PolicyViolation", "severity": "warning"}, "commonAnnotations": {}, "externalURL": "http://alertmanager.example:9093", "alerts": [{"status": "firing", "labels": {"alertname": "PolicyViolation", "severity": "warning"}, "annotations": {"summary": "a policy fails"}, "startsAt": "2026-12-01T08:55:00Z", "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus.example/graph", "fingerprint": "0123456789abcdef"}]}');


--
-- Data for Name: audit_entries; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.audit_entries VALUES (1, '2026-12-01 09:00:12+00', 'U0LEGACY', 'legacy.fixture', 'dev', 'entry-0', 'ok', '{"n":0}', '0000000000000000000000000000000000000000000000000000000000000000', '61b074c4aca462cfd0ed670ef134ca6fc796e256fab906e74db2bc57bab97dc3');
INSERT INTO public.audit_entries VALUES (2, '2026-12-01 09:00:13+00', 'U0LEGACY', 'legacy.fixture', 'dev', 'entry-1', 'ok', '{"n":1}', '61b074c4aca462cfd0ed670ef134ca6fc796e256fab906e74db2bc57bab97dc3', '862b306ed93cc05f9810ff44897f3f077659f0c09ba8b8c3a73f831ac143e959');
INSERT INTO public.audit_entries VALUES (3, '2026-12-01 09:00:14+00', 'U0LEGACY', 'legacy.fixture', 'dev', 'entry-2', 'ok', '{"n":2}', '862b306ed93cc05f9810ff44897f3f077659f0c09ba8b8c3a73f831ac143e959', '7a018d09b0035e2180d6e744f198d454cb6ced507d73c393736f0be9fcbea59d');


--
-- Data for Name: backup_environments; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.backup_environments VALUES ('20261201T090000Z-legacy', 'dev', true, '2026-12-01 09:01:00+00', 1, NULL);


--
-- Data for Name: backups; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.backups VALUES ('20261201T090000Z-legacy', '2026-12-01 09:00:00+00', '2026-12-01 09:01:00+00', 'manual', 'U0LEGACY', '{"environments": ["dev"]}', '[{"target": "local", "location": "/backups/20261201T090000Z-legacy"}]', '\x1f8b0800000000000203ab564acbcc492d56b252a8564a492dd34fce292d2e492d2ac8cfc94cce4c2dd62f4a2d2ccd2c4ad5cd494c4acd29d6ab4ccccd01aa5532a01028d5d60200cc42e8c57a000000');


--
-- Data for Name: evidence_packs; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.evidence_packs VALUES (1, '2026-11', '2026-12-01 09:00:00+00', 'scheduler', 3, '7a018d09b0035e2180d6e744f198d454cb6ced507d73c393736f0be9fcbea59d', '[{"target": "local", "location": "/evidence/2026-11"}]');


--
-- Data for Name: exception_reminders; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.exception_reminders VALUES ('R-1a2b3c4d', 7, '2026-12-01 09:00:00+00');


--
-- Data for Name: exception_requests; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.exception_requests VALUES ('R-1a2b3c4d', 'pending', 'dev', 'require-labels', 'ClusterPolicy', '{"rules": ["r"], "namespaces": ["payments"], "kinds": ["Deployment"], "names": []}', 'a justification long enough', 30, 'U0SAM', 'C0PLATFORM', '2026-12-01 09:00:00+00', 'SEC-1', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0);


--
-- Data for Name: exception_review_items; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.exception_review_items VALUES (1, 'R-1a2b3c4d', 0, 'Open', NULL, NULL, NULL);


--
-- Data for Name: exception_reviews; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.exception_reviews VALUES (1, '2026-12-01 09:00:00+00', 'C0REVIEW', '1700000000.000100');


--
-- Data for Name: notices; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.notices VALUES (1, 'legacy-notice', 'C0PLATFORM', NULL, 'exception R-1a2b3c4d approved', 'null', 'pending', 0, NULL, NULL, NULL, '2026-12-01 09:00:16+00', NULL, NULL, NULL);


--
-- Data for Name: promotion_plans; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.promotion_plans VALUES ('P-FC29B4', '2026-12-01 09:00:00+00', 'U0LEGACY', 'C0PLATFORM', NULL, 'ClusterPolicy', 'require-labels', 'enforce', false, 'pending', '{"policy": "require-labels", "id": "P-FC29B4"}', NULL, NULL, NULL, NULL, NULL, NULL);


--
-- Data for Name: promotion_records; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.promotion_records VALUES (1, '2026-12-01 09:00:00+00', 'dev', 'ClusterPolicy', 'require-labels', 'enforce', 'promote', 'U0LEGACY', 'P-FC29B4', '12345');


--
-- Data for Name: restore_plans; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.restore_plans VALUES ('RP-legacy', '20261201T090000Z-legacy', 'dev', '/backups/20261201T090000Z-legacy', 'U0LEGACY', '2026-12-01 09:00:00+00', 'pending', '[{"kind": "ClusterPolicy", "name": "require-labels", "action": "create"}]', NULL, NULL, NULL);


--
-- Data for Name: scheduled_runs; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.scheduled_runs VALUES ('backup', '2026-12-01T09:00:00Z', '2026-12-01 09:00:00+00', 'replica-legacy', '2026-12-01 09:01:00+00', 'ok');


--
-- Data for Name: schema_migrations; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.schema_migrations VALUES (1, 'audit trail entries', '2026-12-01 09:00:01+00');
INSERT INTO public.schema_migrations VALUES (2, 'audit trail append-only guard', '2026-12-01 09:00:02+00');
INSERT INTO public.schema_migrations VALUES (3, 'scheduled job runs', '2026-12-01 09:00:03+00');
INSERT INTO public.schema_migrations VALUES (100, 'alert relay tables', '2026-12-01 09:00:04+00');
INSERT INTO public.schema_migrations VALUES (200, 'exception register tables', '2026-12-01 09:00:05+00');
INSERT INTO public.schema_migrations VALUES (300, 'backup catalog', '2026-12-01 09:00:06+00');
INSERT INTO public.schema_migrations VALUES (301, 'restore plans', '2026-12-01 09:00:07+00');
INSERT INTO public.schema_migrations VALUES (302, 'evidence packs', '2026-12-01 09:00:08+00');
INSERT INTO public.schema_migrations VALUES (400, 'promotion plans', '2026-12-01 09:00:09+00');
INSERT INTO public.schema_migrations VALUES (401, 'promotion records', '2026-12-01 09:00:10+00');
INSERT INTO public.schema_migrations VALUES (500, 'notice outbox', '2026-12-01 09:00:11+00');


--
-- Name: alert_messages_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.alert_messages_id_seq', 1, true);


--
-- Name: alert_notifications_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.alert_notifications_id_seq', 1, true);


--
-- Name: evidence_packs_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.evidence_packs_id_seq', 1, true);


--
-- Name: exception_reviews_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.exception_reviews_id_seq', 1, true);


--
-- Name: notices_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.notices_id_seq', 1, true);


--
-- Name: promotion_records_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.promotion_records_id_seq', 1, true);


--
-- Name: notices notices_dedup_key_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.notices
    ADD CONSTRAINT notices_dedup_key_key UNIQUE (dedup_key);


--
-- Name: notices notices_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.notices
    ADD CONSTRAINT notices_pkey PRIMARY KEY (id);


--
-- Name: alert_messages pk_alert_messages; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alert_messages
    ADD CONSTRAINT pk_alert_messages PRIMARY KEY (id);


--
-- Name: alert_notifications pk_alert_notifications; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alert_notifications
    ADD CONSTRAINT pk_alert_notifications PRIMARY KEY (id);


--
-- Name: audit_entries pk_audit_entries; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audit_entries
    ADD CONSTRAINT pk_audit_entries PRIMARY KEY (id);


--
-- Name: backup_environments pk_backup_environments; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.backup_environments
    ADD CONSTRAINT pk_backup_environments PRIMARY KEY (backup_id, environment);


--
-- Name: backups pk_backups; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.backups
    ADD CONSTRAINT pk_backups PRIMARY KEY (id);


--
-- Name: evidence_packs pk_evidence_packs; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.evidence_packs
    ADD CONSTRAINT pk_evidence_packs PRIMARY KEY (id);


--
-- Name: exception_reminders pk_exception_reminders; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.exception_reminders
    ADD CONSTRAINT pk_exception_reminders PRIMARY KEY (request_id, days);


--
-- Name: exception_requests pk_exception_requests; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.exception_requests
    ADD CONSTRAINT pk_exception_requests PRIMARY KEY (id);


--
-- Name: exception_review_items pk_exception_review_items; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.exception_review_items
    ADD CONSTRAINT pk_exception_review_items PRIMARY KEY (review_id, request_id);


--
-- Name: exception_reviews pk_exception_reviews; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.exception_reviews
    ADD CONSTRAINT pk_exception_reviews PRIMARY KEY (id);


--
-- Name: promotion_plans pk_promotion_plans; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.promotion_plans
    ADD CONSTRAINT pk_promotion_plans PRIMARY KEY (id);


--
-- Name: promotion_records pk_promotion_records; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.promotion_records
    ADD CONSTRAINT pk_promotion_records PRIMARY KEY (id);


--
-- Name: restore_plans pk_restore_plans; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.restore_plans
    ADD CONSTRAINT pk_restore_plans PRIMARY KEY (id);


--
-- Name: scheduled_runs pk_scheduled_runs; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.scheduled_runs
    ADD CONSTRAINT pk_scheduled_runs PRIMARY KEY (job, slot);


--
-- Name: schema_migrations pk_schema_migrations; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT pk_schema_migrations PRIMARY KEY (version);


--
-- Name: alert_messages uq_alert_messages_group_channel; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alert_messages
    ADD CONSTRAINT uq_alert_messages_group_channel UNIQUE (group_hash, channel);


--
-- Name: alert_notifications uq_alert_notifications_dedup_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alert_notifications
    ADD CONSTRAINT uq_alert_notifications_dedup_key UNIQUE (dedup_key);


--
-- Name: audit_entries uq_audit_entries_hash; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audit_entries
    ADD CONSTRAINT uq_audit_entries_hash UNIQUE (hash);


--
-- Name: audit_entries uq_audit_entries_prev_hash; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audit_entries
    ADD CONSTRAINT uq_audit_entries_prev_hash UNIQUE (prev_hash);


--
-- Name: ix_alert_messages_pending_channel; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_alert_messages_pending_channel ON public.alert_messages USING btree (pending, channel);


--
-- Name: ix_alert_notifications_received_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_alert_notifications_received_at ON public.alert_notifications USING btree (received_at);


--
-- Name: ix_audit_entries_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_audit_entries_at ON public.audit_entries USING btree (at);


--
-- Name: ix_backup_environments_env_time; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_backup_environments_env_time ON public.backup_environments USING btree (environment, ok, finished_at);


--
-- Name: ix_backups_started_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_backups_started_at ON public.backups USING btree (started_at);


--
-- Name: ix_evidence_packs_month; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_evidence_packs_month ON public.evidence_packs USING btree (month);


--
-- Name: ix_exception_requests_state_expires; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_exception_requests_state_expires ON public.exception_requests USING btree (state, expires_at);


--
-- Name: ix_notices_due; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_notices_due ON public.notices USING btree (state, channel, not_before);


--
-- Name: ix_promotion_plans_policy; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_promotion_plans_policy ON public.promotion_plans USING btree (kind, policy);


--
-- Name: ix_promotion_records_policy; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_promotion_records_policy ON public.promotion_records USING btree (kind, policy, environment, at);


--
-- Name: audit_entries audit_entries_append_only; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER audit_entries_append_only BEFORE DELETE OR UPDATE ON public.audit_entries FOR EACH ROW EXECUTE FUNCTION public.audit_entries_append_only();


--
-- Name: audit_entries audit_entries_no_truncate; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON public.audit_entries FOR EACH STATEMENT EXECUTE FUNCTION public.audit_entries_append_only();


--
-- PostgreSQL database dump complete
--


