//! Why: the RDP 6.0 planar decoder (`gateway::rdp::planar`) reads bitmaps the server chose:
//! any bytes, at any claimed size, must decode or be refused with an error, never panic,
//! read or write out of bounds, or return planes of another size than asked.
#![no_main]

use gateway::rdp::planar::{PlanarDecoder, Planes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let [w, h, data @ ..] = input else {
        return;
    };
    let (width, height) = (1 + usize::from(*w % 64), 1 + usize::from(*h % 64));
    let mut decoder = PlanarDecoder::default();
    if let Ok(Planes::Rgb(planes)) = decoder.decode(data, width, height) {
        assert_eq!(planes.len(), 3 * width * height);
    }
});
