-- Dedup state, delivery history and the receipt outbox. No personal data is stored here:
-- phone numbers, emails and names stay in the event and in memory for the time of the send.

-- One row per (order, milestone): the unique key is the deduplication.
CREATE TABLE notifications (
    id                  uuid        PRIMARY KEY,            -- uuid5(order_id, milestone)
    order_id            text        NOT NULL,
    waybill             text        NOT NULL,
    milestone           text        NOT NULL,
    milestone_rank      smallint    NOT NULL,
    event_id            text        NOT NULL,
    event_occurred_at   timestamptz NOT NULL,
    state               text        NOT NULL DEFAULT 'claimed',  -- claimed, then a final outcome
    claims              integer     NOT NULL DEFAULT 1,          -- >1: taken again after a crash mid-send
    channel             text,
    provider            text,
    provider_message_id text,
    locale              text,
    sms_encoding        text,
    sms_segments        integer,
    reason              text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notifications_order_milestone_key UNIQUE (order_id, milestone)
);
CREATE INDEX notifications_order_rank_idx ON notifications (order_id, milestone_rank);

-- Every event consumed, milestone or not (ids and codes only), for support and replay analysis.
CREATE TABLE shipment_events (
    event_id         text        PRIMARY KEY,
    order_id         text        NOT NULL,
    tms_status       text        NOT NULL,
    milestone        text,
    occurred_at      timestamptz NOT NULL,
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX shipment_events_order_idx ON shipment_events (order_id);

-- Transactional outbox: a receipt is written in the same transaction as the outcome it reports,
-- then published to Kafka and marked. Unpublished rows are re-published by the relay.
CREATE TABLE receipt_outbox (
    receipt_id      uuid        PRIMARY KEY,
    notification_id uuid        NOT NULL REFERENCES notifications (id),
    order_id        text        NOT NULL,
    payload         bytea       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz
);
CREATE INDEX receipt_outbox_unpublished_idx ON receipt_outbox (created_at) WHERE published_at IS NULL;
