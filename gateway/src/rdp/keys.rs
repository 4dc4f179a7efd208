//! Why: RDP sends keys by their position on a PC keyboard (scancodes), not by the character
//! they make, so the target applies its own keyboard layout, exactly as with a local
//! keyboard. Browsers name key positions with `KeyboardEvent.code` ("KeyA", "ShiftLeft"),
//! which is layout-independent too; this table maps one to the other (scancode set 1, as
//! RDP uses; `true` marks the E0-prefixed "extended" keys).

/// The scancode of a browser key position, or None for keys a PC keyboard does not have.
pub fn scancode(code: &str) -> Option<(bool, u8)> {
    let plain = |c: u8| Some((false, c));
    let ext = |c: u8| Some((true, c));
    match code {
        "Escape" => plain(0x01),
        "Digit1" => plain(0x02),
        "Digit2" => plain(0x03),
        "Digit3" => plain(0x04),
        "Digit4" => plain(0x05),
        "Digit5" => plain(0x06),
        "Digit6" => plain(0x07),
        "Digit7" => plain(0x08),
        "Digit8" => plain(0x09),
        "Digit9" => plain(0x0A),
        "Digit0" => plain(0x0B),
        "Minus" => plain(0x0C),
        "Equal" => plain(0x0D),
        "Backspace" => plain(0x0E),
        "Tab" => plain(0x0F),
        "KeyQ" => plain(0x10),
        "KeyW" => plain(0x11),
        "KeyE" => plain(0x12),
        "KeyR" => plain(0x13),
        "KeyT" => plain(0x14),
        "KeyY" => plain(0x15),
        "KeyU" => plain(0x16),
        "KeyI" => plain(0x17),
        "KeyO" => plain(0x18),
        "KeyP" => plain(0x19),
        "BracketLeft" => plain(0x1A),
        "BracketRight" => plain(0x1B),
        "Enter" => plain(0x1C),
        "ControlLeft" => plain(0x1D),
        "KeyA" => plain(0x1E),
        "KeyS" => plain(0x1F),
        "KeyD" => plain(0x20),
        "KeyF" => plain(0x21),
        "KeyG" => plain(0x22),
        "KeyH" => plain(0x23),
        "KeyJ" => plain(0x24),
        "KeyK" => plain(0x25),
        "KeyL" => plain(0x26),
        "Semicolon" => plain(0x27),
        "Quote" => plain(0x28),
        "Backquote" => plain(0x29),
        "ShiftLeft" => plain(0x2A),
        "Backslash" => plain(0x2B),
        "KeyZ" => plain(0x2C),
        "KeyX" => plain(0x2D),
        "KeyC" => plain(0x2E),
        "KeyV" => plain(0x2F),
        "KeyB" => plain(0x30),
        "KeyN" => plain(0x31),
        "KeyM" => plain(0x32),
        "Comma" => plain(0x33),
        "Period" => plain(0x34),
        "Slash" => plain(0x35),
        "ShiftRight" => plain(0x36),
        "NumpadMultiply" => plain(0x37),
        "AltLeft" => plain(0x38),
        "Space" => plain(0x39),
        "CapsLock" => plain(0x3A),
        "F1" => plain(0x3B),
        "F2" => plain(0x3C),
        "F3" => plain(0x3D),
        "F4" => plain(0x3E),
        "F5" => plain(0x3F),
        "F6" => plain(0x40),
        "F7" => plain(0x41),
        "F8" => plain(0x42),
        "F9" => plain(0x43),
        "F10" => plain(0x44),
        "NumLock" => plain(0x45),
        "ScrollLock" => plain(0x46),
        "Numpad7" => plain(0x47),
        "Numpad8" => plain(0x48),
        "Numpad9" => plain(0x49),
        "NumpadSubtract" => plain(0x4A),
        "Numpad4" => plain(0x4B),
        "Numpad5" => plain(0x4C),
        "Numpad6" => plain(0x4D),
        "NumpadAdd" => plain(0x4E),
        "Numpad1" => plain(0x4F),
        "Numpad2" => plain(0x50),
        "Numpad3" => plain(0x51),
        "Numpad0" => plain(0x52),
        "NumpadDecimal" => plain(0x53),
        "IntlBackslash" => plain(0x56),
        "F11" => plain(0x57),
        "F12" => plain(0x58),
        "NumpadEnter" => ext(0x1C),
        "ControlRight" => ext(0x1D),
        "NumpadDivide" => ext(0x35),
        "PrintScreen" => ext(0x37),
        "AltRight" => ext(0x38),
        "Home" => ext(0x47),
        "ArrowUp" => ext(0x48),
        "PageUp" => ext(0x49),
        "ArrowLeft" => ext(0x4B),
        "ArrowRight" => ext(0x4D),
        "End" => ext(0x4F),
        "ArrowDown" => ext(0x50),
        "PageDown" => ext(0x51),
        "Insert" => ext(0x52),
        "Delete" => ext(0x53),
        "MetaLeft" => ext(0x5B),
        "MetaRight" => ext(0x5C),
        "ContextMenu" => ext(0x5D),
        _ => None,
    }
}

/// The character a key makes on a US layout without and with Shift, for the recording's
/// typed text (the target's own layout may differ; the recording says so).
pub fn us_character(code: &str, shift: bool) -> Option<char> {
    let pick = |a: char, b: char| Some(if shift { b } else { a });
    if let Some(l) = code.strip_prefix("Key") {
        let c = l.chars().next()?;
        return Some(if shift { c } else { c.to_ascii_lowercase() });
    }
    match code {
        "Digit1" => pick('1', '!'),
        "Digit2" => pick('2', '@'),
        "Digit3" => pick('3', '#'),
        "Digit4" => pick('4', '$'),
        "Digit5" => pick('5', '%'),
        "Digit6" => pick('6', '^'),
        "Digit7" => pick('7', '&'),
        "Digit8" => pick('8', '*'),
        "Digit9" => pick('9', '('),
        "Digit0" => pick('0', ')'),
        "Minus" => pick('-', '_'),
        "Equal" => pick('=', '+'),
        "BracketLeft" => pick('[', '{'),
        "BracketRight" => pick(']', '}'),
        "Semicolon" => pick(';', ':'),
        "Quote" => pick('\'', '"'),
        "Backquote" => pick('`', '~'),
        "Backslash" => pick('\\', '|'),
        "Comma" => pick(',', '<'),
        "Period" => pick('.', '>'),
        "Slash" => pick('/', '?'),
        "Space" => Some(' '),
        "Enter" | "NumpadEnter" => Some('\n'),
        "Tab" => Some('\t'),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_digits_and_extended_keys_map_to_set_1() {
        assert_eq!(scancode("KeyA"), Some((false, 0x1E)));
        assert_eq!(scancode("Digit0"), Some((false, 0x0B)));
        assert_eq!(scancode("Enter"), Some((false, 0x1C)));
        assert_eq!(scancode("NumpadEnter"), Some((true, 0x1C)));
        assert_eq!(scancode("Delete"), Some((true, 0x53)));
        assert_eq!(scancode("MetaLeft"), Some((true, 0x5B)));
        assert_eq!(scancode("Unidentified"), None);
        assert_eq!(us_character("KeyQ", false), Some('q'));
        assert_eq!(us_character("KeyQ", true), Some('Q'));
        assert_eq!(us_character("Slash", true), Some('?'));
        assert_eq!(us_character("ShiftLeft", true), None);
    }
}
