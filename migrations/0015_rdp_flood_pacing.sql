-- How an RDP resource's desktop is paced while it changes without pause (issue 8).
--   flood_pacing: 'thrifty' (the server is held back for half a second after each frame:
--                 about 2 frames a second, about 2 % of a core per session) or 'responsive'
--                 (held back for 50 ms: changes seen sooner, at several times the CPU)
ALTER TABLE resource_rdp ADD COLUMN flood_pacing TEXT NOT NULL DEFAULT 'thrifty';
