-- How an RDP resource's desktop pictures travel to browsers (issue 8).
--   image_quality: 'auto' (photographic regions as JPEG while they change, sent again
--                  exactly once still) or 'lossless' (every region exact from the start)
ALTER TABLE resource_rdp ADD COLUMN image_quality TEXT NOT NULL DEFAULT 'auto';
