//! Why: the gateway splits the server's fast-path and slow-path frames itself and draws
//! their bitmap updates into its own picture (`gateway::rdp::bitmaps`): server-controlled
//! bytes, with sizes and rectangles of the server's choosing. Any frame must be split and
//! drawn, or refused, without a panic and without drawing outside the picture.
#![no_main]

use gateway::rdp::bitmaps::{BitmapPath, Picture, Step};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let mut path = BitmapPath::new(1003);
    let mut picture = Picture::new(64, 48);
    if let Some(update) = path.slow_path_bitmap(input) {
        let _ = path.draw_update(&update, &mut picture);
    }
    for step in path.take(input) {
        if let Step::Draw(data) = step {
            let _ = path.draw_update(&data, &mut picture);
        }
    }
    let _ = path.draw_update(input, &mut picture);
    assert_eq!(picture.size(), (64, 48));
});
