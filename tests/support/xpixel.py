"""Why: test desktops must be fully drawn before an RDP server shares them (the FreeRDP
shadow server captures once at connection and sends no later change of a static screen).
Prints the colour of one pixel of an X display's root window as RRGGBB (libX11 via ctypes;
no X utilities needed).

    python3 xpixel.py DISPLAY X Y
"""
import ctypes
import sys

x11 = ctypes.cdll.LoadLibrary("libX11.so.6")
x11.XOpenDisplay.restype = ctypes.c_void_p
x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
x11.XDefaultRootWindow.restype = ctypes.c_ulong
x11.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
x11.XGetImage.restype = ctypes.c_void_p
x11.XGetImage.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_int,
                          ctypes.c_uint, ctypes.c_uint, ctypes.c_ulong, ctypes.c_int]
x11.XGetPixel.restype = ctypes.c_ulong
x11.XGetPixel.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]

display = x11.XOpenDisplay(sys.argv[1].encode())
if not display:
    sys.exit(2)
ZPIXMAP = 2
image = x11.XGetImage(display, x11.XDefaultRootWindow(display), int(sys.argv[2]),
                      int(sys.argv[3]), 1, 1, 0xFFFFFFFF, ZPIXMAP)
if not image:
    sys.exit(3)
print("%06x" % (x11.XGetPixel(image, 0, 0) & 0xFFFFFF))
