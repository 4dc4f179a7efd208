-- Item 8 of issue 29: what is typed at a secret prompt is kept, sealed under a key of its own
-- (one per recording, never the recording key), wrapped by the vault under
-- "recordings/<id>/hidden-key". NULL: the recording keeps no hidden input (input recording
-- was off, or it was made before this column).
ALTER TABLE recording_keys ADD COLUMN hidden_key TEXT;
