# Status LED (RGB): on/off, colour, brightness, blink period.
from .protocol import CommandRefused, boolean, format_color, int_in, parse_color, show


class Led:
    def __init__(self, hal):
        self.hal = hal
        self.on = False
        self.rgb = (255, 255, 255)
        self.brightness = 255
        self.blink_ms = 0
        self.lit = False    # what the LED shows right now (blinking toggles this)

    def state(self):
        return {"state": "on" if self.on else "off", "color": format_color(self.rgb),
                "brightness": self.brightness, "blink": self.blink_ms}

    def apply(self, cmd):
        """Apply a `led` command; all fields are checked before anything changes."""
        on = self.on
        rgb = self.rgb
        brightness = self.brightness
        blink = self.blink_ms
        seen = False
        if "state" in cmd:
            seen = True
            if cmd["state"] not in ("on", "off"):
                raise CommandRefused('state must be "on" or "off", got %s' % show(cmd["state"]))
            on = cmd["state"] == "on"
        if "color" in cmd:
            seen = True
            rgb = parse_color(cmd["color"])
        if "brightness" in cmd:
            seen = True
            brightness = int_in("brightness", cmd["brightness"], 0, 255)
        if "blink" in cmd:
            seen = True
            value = cmd["blink"]
            if isinstance(value, bool):
                blink = 500 if boolean("blink", value) else 0
            else:
                blink = int_in("blink", value, 0, 10000)
                if 0 < blink < 50:
                    raise CommandRefused("blink must be 0 or 50..10000 ms, got %d" % blink)
        if not seen:
            raise CommandRefused("led needs at least one of state, color, brightness, blink")
        self.on, self.rgb, self.brightness, self.blink_ms = on, rgb, brightness, blink
        self.show(on)
        return self.state()

    def show(self, lit):
        """Drive the LED: lit with the colour scaled by brightness, or dark."""
        self.lit = lit
        if lit:
            r, g, b = self.rgb
            k = self.brightness
            self.hal.led_rgb(r * k // 255, g * k // 255, b * k // 255)
        else:
            self.hal.led_rgb(0, 0, 0)
