-- The search index's lines move out of one sealed blob per recording into segments of about
-- 1 MiB of text each (see recorder::search::Indexer): indexing a recording of any length then
-- holds one segment in memory, and a search opens one segment at a time. A segment is sealed
-- by the vault under "recordings/<id>/lines/<seq>"; segment 0 keeps the old blob's context
-- ("recordings/<id>/lines"), so the blobs copied here open unchanged.
CREATE TABLE recording_index_lines (
    recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    sealed_lines TEXT NOT NULL,
    PRIMARY KEY (recording_id, seq)
);
INSERT INTO recording_index_lines (recording_id, seq, sealed_lines)
    SELECT recording_id, 0, sealed_lines FROM recording_index;
ALTER TABLE recording_index DROP COLUMN sealed_lines;
