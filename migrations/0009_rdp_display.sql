-- How an RDP resource's desktop is sized (issue 8).
--   display: 'follow' (the desktop follows the browser tab's size: Display Control where the
--            server offers it, else the first size, scaled) or 'fixed' (always
--            fixed_width x fixed_height, scaled to the tab)
ALTER TABLE resource_rdp ADD COLUMN display TEXT NOT NULL DEFAULT 'follow';
ALTER TABLE resource_rdp ADD COLUMN fixed_width BIGINT NOT NULL DEFAULT 1280;
ALTER TABLE resource_rdp ADD COLUMN fixed_height BIGINT NOT NULL DEFAULT 800;
