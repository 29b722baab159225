"""A small, deterministic home-improvement shop with rule-judged queries (demo and tests only).

The shop has ~50 product types, each with brands, attribute dimensions (voltage, size, colour,
material, ...) and a title template. Queries are a type phrase ("drill", "power drill") plus
0-3 modifiers taken from one product (its brand and/or attribute values), so every query has at
least one exact item. Each query is judged on 10-16 items drawn from four pools (same type,
substitute types, complement types, unrelated types); the grade of every item comes only from
the written rules below, implemented in :func:`judge`:

* **exact** - the product's type is the query's type (whatever synonym the query used) and every
  modifier in the query (brand, voltage, size, colour, ...) equals the product's value;
* **substitute** - the product's type is the query's type but some modifier conflicts, or the
  product's type is in ``SUBSTITUTES[query type]`` (an impact driver for "drill");
* **complement** - the product's type is in ``COMPLEMENTS[query type]`` (a drill bit set or a
  battery pack for "drill");
* **irrelevant** - anything else.

This is synthetic data for the quickstart and the tests, not a replacement for real judgments.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

GRADES: tuple[str, ...] = ("irrelevant", "complement", "substitute", "exact")
Row = dict[str, str]

# --- relation tables: query type -> product types that substitute for / complement it ---------

SUBSTITUTES: dict[str, tuple[str, ...]] = {
    "cordless drill": ("impact driver",),
    "impact driver": ("cordless drill",),
    "circular saw": ("reciprocating saw",),
    "reciprocating saw": ("circular saw",),
    "drill bit set": ("driver bit set",),
    "driver bit set": ("drill bit set", "screwdriver set"),
    "screwdriver set": ("driver bit set",),
    "hammer": ("rubber mallet",),
    "rubber mallet": ("hammer",),
    "nails": ("wood screws",),
    "wood screws": ("nails",),
    "tool box": ("tool bag",),
    "tool bag": ("tool box",),
    "interior paint": ("exterior paint",),
    "exterior paint": ("interior paint", "deck stain"),
    "deck stain": ("exterior paint",),
    "paint roller": ("paint brush",),
    "paint brush": ("paint roller",),
    "kitchen faucet": ("bathroom faucet",),
    "bathroom faucet": ("kitchen faucet",),
    "extension cord": ("power strip",),
    "power strip": ("extension cord",),
    "ladder": ("step stool",),
    "step stool": ("ladder",),
    "deadbolt": ("door knob",),
    "door knob": ("deadbolt",),
    "lawn mower": ("string trimmer",),
    "string trimmer": ("lawn mower",),
}

COMPLEMENTS: dict[str, tuple[str, ...]] = {
    "cordless drill": ("drill bit set", "driver bit set", "battery pack", "battery charger"),
    "impact driver": ("driver bit set", "battery pack", "battery charger"),
    "circular saw": ("saw blade", "battery pack", "safety glasses"),
    "reciprocating saw": ("battery pack", "safety glasses", "work gloves"),
    "saw blade": ("circular saw",),
    "drill bit set": ("cordless drill",),
    "driver bit set": ("impact driver", "cordless drill"),
    "battery pack": ("battery charger", "cordless drill", "impact driver", "string trimmer"),
    "battery charger": ("battery pack",),
    "hammer": ("nails", "work gloves", "safety glasses"),
    "rubber mallet": ("work gloves",),
    "nails": ("hammer",),
    "screwdriver set": ("tool box", "wood screws"),
    "tool box": ("screwdriver set", "tape measure"),
    "tool bag": ("screwdriver set", "tape measure"),
    "tape measure": ("tool box", "tool bag"),
    "interior paint": ("paint roller", "paint brush", "painter's tape"),
    "exterior paint": ("paint brush", "paint roller"),
    "paint roller": ("interior paint", "exterior paint", "painter's tape"),
    "paint brush": ("interior paint", "exterior paint", "deck stain"),
    "deck stain": ("paint brush", "paint roller"),
    "painter's tape": ("interior paint", "paint roller", "paint brush"),
    "kitchen faucet": ("thread seal tape",),
    "bathroom faucet": ("thread seal tape", "caulk"),
    "shower head": ("thread seal tape",),
    "toilet": ("toilet seat", "caulk"),
    "toilet seat": ("toilet",),
    "thread seal tape": ("kitchen faucet", "bathroom faucet", "shower head"),
    "light bulb": ("ceiling fan",),
    "ceiling fan": ("light bulb",),
    "extension cord": ("lawn mower", "string trimmer"),
    "garden hose": ("hose nozzle",),
    "hose nozzle": ("garden hose",),
    "lawn mower": ("leaf blower", "work gloves"),
    "string trimmer": ("trimmer line", "battery pack"),
    "trimmer line": ("string trimmer",),
    "leaf blower": ("battery pack",),
    "ladder": ("work gloves", "tool bag"),
    "work gloves": ("safety glasses",),
    "safety glasses": ("work gloves",),
    "deadbolt": ("door hinge",),
    "door knob": ("door hinge",),
    "door hinge": ("door knob", "wood screws"),
    "wood screws": ("cordless drill", "driver bit set", "impact driver"),
    "drywall anchors": ("cordless drill", "drill bit set"),
    "caulk": ("caulk gun",),
    "caulk gun": ("caulk",),
    "area rug": ("rug pad",),
    "rug pad": ("area rug",),
}

# --- the product types -----------------------------------------------------------------------

POWER = ("DEWALT", "Milwaukee", "Makita", "RYOBI", "Bosch", "RIDGID")
PAINT = ("BEHR", "Glidden", "Valspar", "Sherwin-Williams", "PPG")
FAUCET = ("Moen", "Delta", "Kohler", "Pfister", "Glacier Bay")
KIT = ("Tool Only", "1 Battery Kit", "2 Battery Kit")


@dataclass(frozen=True)
class ProductType:
    """One product type: query phrases (first one broad), brands, attribute values, templates."""

    name: str
    phrases: tuple[str, ...]
    category: str
    brands: tuple[str, ...]
    attrs: dict[str, tuple[str, ...]]
    title: str  # str.format template over {brand} and the attribute names with "_" for " "
    use: str  # what it is for, for the description


def _t(
    name: str,
    phrases: str,
    category: str,
    brands: tuple[str, ...],
    title: str,
    use: str,
    **attrs: tuple[str, ...],
) -> ProductType:
    """A :class:`ProductType`; ``phrases`` is "|"-separated, attribute names use "_" for " "."""
    return ProductType(
        name=name,
        phrases=tuple(phrases.split("|")),
        category=category,
        brands=brands,
        attrs={k.replace("_", " "): v for k, v in attrs.items()},
        title=title,
        use=use,
    )


_TYPE_LIST: list[ProductType] = [
    _t("cordless drill", "drill|cordless drill|power drill|drill driver",
       "Tools > Power Tools > Drills", POWER,
       "{brand} {voltage} Cordless {chuck_size} Drill/Driver ({kit})",
       "drilling and driving in wood, metal and plastic",
       voltage=("12V", "18V", "20V"), chuck_size=("3/8 in.", "1/2 in."), kit=KIT),
    _t("impact driver", "impact driver|cordless impact driver|impact gun",
       "Tools > Power Tools > Impact Drivers", POWER,
       "{brand} {voltage} {motor} Cordless 1/4 in. Impact Driver ({kit})",
       "driving long screws and lag bolts",
       voltage=("12V", "18V", "20V"), kit=KIT, motor=("Brushed", "Brushless")),
    _t("circular saw", "circular saw|circ saw|skil saw",
       "Tools > Power Tools > Saws > Circular Saws", POWER,
       "{brand} {power} {blade_size} Circular Saw",
       "straight cuts in lumber and plywood",
       power=("15 Amp Corded", "18V Cordless", "20V Cordless"),
       blade_size=("6-1/2 in.", "7-1/4 in.")),
    _t("reciprocating saw", "reciprocating saw|sawzall|recip saw",
       "Tools > Power Tools > Saws > Reciprocating Saws", POWER,
       "{brand} {power} Reciprocating Saw with {stroke_length} Stroke",
       "demolition and cutting pipe, nails and wood",
       power=("12 Amp Corded", "18V Cordless", "20V Cordless"),
       stroke_length=("1 in.", "1-1/8 in.", "1-1/4 in.")),
    _t("saw blade", "saw blade|circular saw blade|blade",
       "Tools > Power Tool Accessories > Saw Blades",
       ("Diablo", "DEWALT", "Freud", "IRWIN", "Makita"),
       "{brand} {blade_size} x {teeth} {material} Circular Saw Blade",
       "clean cuts in framing lumber and plywood",
       blade_size=("6-1/2 in.", "7-1/4 in.", "10 in."), teeth=("24-Tooth", "40-Tooth", "60-Tooth"),
       material=("Carbide", "Steel")),
    _t("drill bit set", "drill bits|drill bit set|bit set for drill",
       "Tools > Power Tool Accessories > Drill Bits",
       ("DEWALT", "Milwaukee", "Bosch", "IRWIN", "RYOBI"),
       "{brand} {material} Drill Bit Set ({pieces})",
       "drilling holes in wood, metal and plastic",
       material=("Black Oxide", "Titanium", "Cobalt"),
       pieces=("14-Piece", "21-Piece", "29-Piece", "100-Piece")),
    _t("driver bit set", "driver bits|screwdriver bits|impact bit set",
       "Tools > Power Tool Accessories > Driver Bits",
       ("DEWALT", "Milwaukee", "Bosch", "Makita", "Husky"),
       "{brand} {material} Impact Driver Bit Set ({pieces})",
       "driving Phillips, square and Torx screws",
       material=("S2 Steel", "Titanium", "Black Oxide"),
       pieces=("20-Piece", "32-Piece", "45-Piece", "100-Piece")),
    _t("battery pack", "battery|battery pack|tool battery|lithium ion battery",
       "Tools > Power Tool Batteries & Chargers > Batteries", POWER,
       "{brand} {voltage} {capacity} Lithium-Ion Battery Pack",
       "powering the brand's cordless tools",
       voltage=("12V", "18V", "20V", "40V"), capacity=("2.0Ah", "4.0Ah", "5.0Ah", "6.0Ah")),
    _t("battery charger", "battery charger|charger|tool charger",
       "Tools > Power Tool Batteries & Chargers > Chargers", POWER,
       "{brand} {voltage} Lithium-Ion {speed} Charger",
       "recharging the brand's tool batteries",
       voltage=("12V", "18V", "20V", "40V"), speed=("Standard", "Rapid", "Dual-Port")),
    _t("hammer", "hammer|claw hammer|framing hammer",
       "Tools > Hand Tools > Hammers", ("Estwing", "Stanley", "Husky", "Vaughan", "DEWALT"),
       "{brand} {weight} {handle} Handle {face} Claw Hammer",
       "framing, nailing and light demolition",
       weight=("16 oz.", "20 oz.", "22 oz.", "28 oz."),
       handle=("Fiberglass", "Steel", "Hickory Wood"), face=("Smooth Face", "Milled Face")),
    _t("rubber mallet", "mallet|rubber mallet|dead blow hammer",
       "Tools > Hand Tools > Mallets", ("Estwing", "Stanley", "Husky", "TEKTON"),
       "{brand} {weight} {color} Rubber Mallet",
       "tapping pavers, tiles and furniture joints",
       weight=("16 oz.", "24 oz.", "32 oz."), color=("Black", "White")),
    _t("nails", "nails|nail|common nails",
       "Hardware > Fasteners > Nails", ("Grip-Rite", "Hillman", "Paslode", "Everbilt"),
       "{brand} {length} {finish} Common Nails ({pack})",
       "framing and general carpentry",
       length=("1-1/2 in.", "2 in.", "3 in.", "3-1/2 in."),
       finish=("Bright", "Hot-Dipped Galvanized", "Vinyl Coated"), pack=("1 lb.", "5 lb.")),
    _t("screwdriver set", "screwdriver set|screwdrivers|screwdriver",
       "Tools > Hand Tools > Screwdrivers",
       ("Klein Tools", "Stanley", "Husky", "Wera", "Craftsman"),
       "{brand} {tip} Screwdriver Set with {grip} Grips ({pieces})",
       "assembly, electrical and general repair work",
       tip=("Phillips and Slotted", "Precision", "Insulated"),
       grip=("Cushion", "Hard"), pieces=("6-Piece", "10-Piece", "20-Piece")),
    _t("tool box", "tool box|toolbox|tool chest",
       "Tools > Tool Storage > Tool Boxes",
       ("Husky", "Stanley", "DEWALT", "Milwaukee", "Craftsman", "Keter"),
       "{brand} {size} {material} Tool Box in {color}",
       "storing and carrying hand tools",
       size=("16 in.", "20 in.", "22 in.", "26 in."), material=("Plastic", "Metal"),
       color=("Black", "Red", "Yellow", "Gray")),
    _t("tool bag", "tool bag|tool tote|tool backpack",
       "Tools > Tool Storage > Tool Bags",
       ("Husky", "Klein Tools", "DEWALT", "Milwaukee", "CLC"),
       "{brand} {size} {material} Tool Bag with {pockets}",
       "carrying tools on the job site",
       size=("12 in.", "15 in.", "18 in."), material=("Canvas", "Ballistic Nylon"),
       pockets=("8 Pockets", "20 Pockets", "35 Pockets")),
    _t("tape measure", "tape measure|measuring tape|tape rule",
       "Tools > Hand Tools > Measuring Tools",
       ("Stanley", "Milwaukee", "Komelon", "DEWALT", "Husky"),
       "{brand} {length} x {width} {feature} Tape Measure",
       "measuring and layout",
       length=("16 ft.", "25 ft.", "30 ft.", "35 ft."), width=("3/4 in.", "1 in.", "1-1/4 in."),
       feature=("Magnetic", "Auto-Lock", "Standard")),
    _t("interior paint", "paint|interior paint|wall paint",
       "Paint > Interior Paint", PAINT,
       "{brand} {size} {color} {sheen} Interior Paint and Primer",
       "walls, ceilings and trim",
       size=("1 qt.", "1 gal.", "5 gal."), color=("White", "Gray", "Beige", "Navy Blue"),
       sheen=("Flat", "Eggshell", "Satin", "Semi-Gloss")),
    _t("exterior paint", "exterior paint|house paint|outdoor paint",
       "Paint > Exterior Paint", PAINT,
       "{brand} {size} {color} {sheen} Exterior Paint and Primer",
       "siding, trim and doors",
       size=("1 gal.", "5 gal."), color=("White", "Gray", "Beige", "Black"),
       sheen=("Flat", "Satin", "Semi-Gloss")),
    _t("paint roller", "paint roller|roller|roller cover",
       "Paint > Paint Applicators > Paint Rollers",
       ("Wooster", "Purdy", "Shur-Line", "Linzer"),
       "{brand} {width} x {nap} Nap {material} Paint Roller Cover ({pack})",
       "smooth and semi-smooth walls",
       width=("4 in.", "9 in.", "18 in."), nap=("3/8 in.", "1/2 in.", "3/4 in."),
       material=("Microfiber", "Polyester", "Lambswool"), pack=("1-Pack", "3-Pack")),
    _t("paint brush", "paint brush|brush|paintbrush",
       "Paint > Paint Applicators > Paint Brushes",
       ("Purdy", "Wooster", "Shur-Line", "Linzer"),
       "{brand} {width} {shape} {material} Paint Brush",
       "cutting in edges and painting trim",
       width=("1-1/2 in.", "2 in.", "2-1/2 in.", "3 in."), shape=("Angled Sash", "Flat"),
       material=("Nylon/Polyester", "Natural Bristle")),
    _t("deck stain", "deck stain|stain|wood stain",
       "Paint > Exterior Stains > Deck Stains",
       ("BEHR", "Thompson's WaterSeal", "Cabot", "Olympic", "Ready Seal"),
       "{brand} {size} {color} {opacity} Exterior Wood Stain",
       "decks, fences and siding",
       size=("1 gal.", "5 gal."), color=("Cedar", "Redwood", "Gray", "Natural"),
       opacity=("Transparent", "Semi-Transparent", "Solid Color")),
    _t("painter's tape", "painters tape|painter's tape|masking tape",
       "Paint > Paint Supplies > Painter's Tape", ("ScotchBlue", "FrogTape", "Duck", "IPG"),
       "{brand} {width} x {length} {color} Painter's Tape",
       "crisp paint lines on walls and trim",
       width=("0.94 in.", "1.41 in.", "1.88 in."), length=("45 yd.", "60 yd."),
       color=("Blue", "Green", "Yellow")),
    _t("kitchen faucet", "kitchen faucet|faucet|kitchen sink faucet",
       "Kitchen > Kitchen Faucets", FAUCET,
       "{brand} {style} Kitchen Faucet in {finish}",
       "kitchen sinks",
       style=("Single-Handle Pull-Down", "Two-Handle", "Touchless Pull-Down"),
       finish=("Chrome", "Matte Black", "Spot Resist Stainless", "Brushed Nickel")),
    _t("bathroom faucet", "bathroom faucet|bathroom sink faucet|vanity faucet",
       "Bath > Bathroom Faucets", FAUCET,
       "{brand} {spread} {handles} Bathroom Faucet in {finish}",
       "bathroom sinks and vanities",
       spread=("4 in. Centerset", "8 in. Widespread", "Single Hole"),
       handles=("Single-Handle", "2-Handle"),
       finish=("Chrome", "Matte Black", "Brushed Nickel", "Oil Rubbed Bronze")),
    _t("shower head", "shower head|showerhead|rain shower head",
       "Bath > Shower Heads", ("Moen", "Delta", "Kohler", "Waterpik", "Speakman"),
       "{brand} {sprays} {style} Shower Head {flow} in {finish}",
       "upgrading a standard shower arm",
       sprays=("1-Spray", "5-Spray", "7-Spray"), style=("Fixed", "Handheld"),
       flow=("1.8 GPM", "2.5 GPM"), finish=("Chrome", "Matte Black", "Brushed Nickel")),
    _t("toilet", "toilet|toilets|commode",
       "Bath > Toilets", ("Kohler", "American Standard", "TOTO", "Glacier Bay"),
       "{brand} {pieces} {flush} {bowl} Toilet in {color}",
       "full and half bathrooms",
       pieces=("1-Piece", "2-Piece"), flush=("1.28 GPF", "1.1/1.6 GPF Dual Flush"),
       bowl=("Elongated", "Round"), color=("White", "Biscuit")),
    _t("toilet seat", "toilet seat|toilet seats|soft close toilet seat",
       "Bath > Toilet Seats", ("Bemis", "Kohler", "American Standard", "Church"),
       "{brand} {shape} Closed Front {material} Toilet Seat in {color}",
       "replacing a worn or cracked seat",
       shape=("Elongated", "Round"), material=("Plastic", "Enameled Wood"),
       color=("White", "Biscuit", "Black")),
    _t("thread seal tape", "plumbers tape|teflon tape|thread seal tape",
       "Plumbing > Plumbing Supplies > Thread Seal Tape", ("Oatey", "Harvey", "Everbilt"),
       "{brand} {width} x {length} PTFE Thread Seal Tape in {color}",
       "sealing pipe threads against leaks",
       width=("1/2 in.", "3/4 in."), length=("260 in.", "520 in."),
       color=("White", "Yellow", "Pink")),
    _t("light bulb", "light bulb|led bulb|bulbs",
       "Lighting > Light Bulbs", ("Philips", "GE", "Feit Electric", "Sylvania", "EcoSmart"),
       "{brand} {equivalent} Equivalent {shape} Dimmable LED Light Bulb {color} ({pack})",
       "lamps and ceiling fixtures",
       equivalent=("40W", "60W", "75W", "100W"), shape=("A19", "BR30", "A21"),
       color=("Soft White", "Daylight", "Bright White"), pack=("4-Pack", "8-Pack")),
    _t("ceiling fan", "ceiling fan|fan|ceiling fan with light",
       "Lighting > Ceiling Fans",
       ("Hunter", "Hampton Bay", "Minka-Aire", "Home Decorators Collection", "Westinghouse"),
       "{brand} {size} {location} {finish} Ceiling Fan with Light Kit",
       "cooling bedrooms, living rooms and patios",
       size=("44 in.", "52 in.", "60 in."), location=("Indoor", "Indoor/Outdoor"),
       finish=("White", "Matte Black", "Brushed Nickel", "Bronze")),
    _t("extension cord", "extension cord|power cord|extension cable",
       "Electrical > Extension Cords", ("Southwire", "Woods", "HDX", "US Wire"),
       "{brand} {length} {gauge} {rating} Extension Cord in {color}",
       "powering tools and appliances away from an outlet",
       length=("25 ft.", "50 ft.", "100 ft."), gauge=("16/3", "14/3", "12/3"),
       rating=("Indoor", "Outdoor"), color=("Orange", "Green", "Yellow")),
    _t("power strip", "power strip|surge protector|outlet strip",
       "Electrical > Power Strips", ("Belkin", "APC", "Tripp Lite", "GE", "HDX"),
       "{brand} {outlets} Surge Protector Power Strip with {cord} Cord in {color}",
       "desks, TVs and workbenches",
       outlets=("6-Outlet", "8-Outlet", "12-Outlet"), cord=("3 ft.", "6 ft.", "10 ft."),
       color=("White", "Black")),
    _t("garden hose", "garden hose|hose|water hose",
       "Outdoors > Garden > Garden Hoses", ("Flexzilla", "Gilmour", "Melnor", "Swan", "Zero-G"),
       "{brand} {diameter} x {length} {material} Garden Hose",
       "watering gardens and washing cars",
       diameter=("1/2 in.", "5/8 in.", "3/4 in."), length=("25 ft.", "50 ft.", "100 ft."),
       material=("Rubber", "Vinyl", "Hybrid Polymer")),
    _t("hose nozzle", "hose nozzle|spray nozzle|hose sprayer",
       "Outdoors > Garden > Hose Nozzles", ("Gilmour", "Melnor", "Orbit", "Dramm"),
       "{brand} {patterns} {material} Hose Nozzle",
       "watering plants and rinsing patios",
       patterns=("1-Pattern", "7-Pattern", "10-Pattern"), material=("Metal", "Plastic")),
    _t("lawn mower", "lawn mower|mower|lawnmower",
       "Outdoors > Outdoor Power Equipment > Lawn Mowers",
       ("Honda", "Toro", "EGO", "Craftsman", "Greenworks", "RYOBI"),
       "{brand} {deck} {power} {drive} Walk Behind Lawn Mower",
       "small and medium lawns",
       deck=("20 in.", "21 in.", "22 in."), power=("Gas", "40V Battery", "56V Battery"),
       drive=("Push", "Self-Propelled")),
    _t("string trimmer", "string trimmer|weed eater|weed wacker",
       "Outdoors > Outdoor Power Equipment > String Trimmers",
       ("EGO", "Husqvarna", "Echo", "RYOBI", "Greenworks", "DEWALT"),
       "{brand} {power} {cut} {shaft} Shaft String Trimmer",
       "edging and trimming grass along fences",
       power=("Gas", "20V Battery", "40V Battery"), cut=("13 in.", "15 in.", "17 in."),
       shaft=("Straight", "Curved")),
    _t("trimmer line", "trimmer line|weed eater string|trimmer string",
       "Outdoors > Outdoor Power Equipment > Trimmer Line",
       ("Oregon", "Echo", "Husqvarna", "Cyclone"),
       "{brand} {gauge} x {length} {shape} Trimmer Line",
       "reloading string trimmer heads",
       gauge=("0.065 in.", "0.080 in.", "0.095 in."), length=("200 ft.", "500 ft."),
       shape=("Round", "Twisted", "Square")),
    _t("leaf blower", "leaf blower|blower|leaf blowers",
       "Outdoors > Outdoor Power Equipment > Leaf Blowers",
       ("EGO", "Echo", "Husqvarna", "RYOBI", "Toro"),
       "{brand} {speed} {airflow} {power} Handheld Leaf Blower",
       "clearing leaves and debris",
       speed=("120 MPH", "170 MPH", "200 MPH"), airflow=("400 CFM", "530 CFM", "650 CFM"),
       power=("Gas", "40V Battery", "Corded Electric")),
    _t("ladder", "ladder|step ladder|extension ladder",
       "Building Materials > Ladders",
       ("Werner", "Little Giant", "Louisville Ladder", "Gorilla Ladders"),
       "{brand} {height} {material} Ladder with {rating} Load Capacity",
       "reaching ceilings, gutters and shelves",
       height=("6 ft.", "8 ft.", "10 ft.", "22 ft."), material=("Fiberglass", "Aluminum"),
       rating=("250 lb.", "300 lb.", "375 lb.")),
    _t("step stool", "step stool|folding step stool|kitchen step stool",
       "Building Materials > Ladders > Step Stools",
       ("Werner", "Gorilla Ladders", "Cosco", "Little Giant"),
       "{brand} {steps} {material} Folding Step Stool in {color}",
       "reaching high cabinets and shelves",
       steps=("1-Step", "2-Step", "3-Step"), material=("Steel", "Aluminum", "Plastic"),
       color=("White", "Black", "Gray")),
    _t("work gloves", "work gloves|gloves|work glove",
       "Safety > Work Gloves",
       ("Mechanix Wear", "Firm Grip", "Ironclad", "Wells Lamont", "Carhartt"),
       "{brand} {size} {material} Work Gloves ({pack})",
       "construction, yard work and general handling",
       size=("Medium", "Large", "X-Large"), material=("Leather", "Nitrile Coated", "Synthetic"),
       pack=("1-Pair", "3-Pair")),
    _t("safety glasses", "safety glasses|safety goggles|eye protection",
       "Safety > Eye Protection",
       ("3M", "DEWALT", "Pyramex", "Milwaukee", "Radians"),
       "{brand} {lens} Lens Anti-Fog Safety Glasses with {frame} Frame",
       "cutting, grinding and yard work",
       lens=("Clear", "Smoke", "Amber"), frame=("Black", "Gray", "Blue")),
    _t("deadbolt", "deadbolt|door lock|deadbolt lock",
       "Hardware > Door Hardware > Deadbolts", ("Schlage", "Kwikset", "Defiant", "Yale"),
       "{brand} {cylinder} {keying} Deadbolt in {finish}",
       "exterior doors",
       cylinder=("Single Cylinder", "Double Cylinder", "Keypad Electronic"),
       keying=("Keyed Alike", "SmartKey"),
       finish=("Satin Nickel", "Aged Bronze", "Matte Black", "Polished Brass")),
    _t("door knob", "door knob|doorknob|door handle",
       "Hardware > Door Hardware > Door Knobs", ("Schlage", "Kwikset", "Defiant", "Baldwin"),
       "{brand} {function} Door Knob in {finish}",
       "interior and exterior doors",
       function=("Passage Hall/Closet", "Privacy Bed/Bath", "Keyed Entry"),
       finish=("Satin Nickel", "Aged Bronze", "Matte Black", "Polished Brass")),
    _t("door hinge", "door hinge|hinges|door hinges",
       "Hardware > Door Hardware > Door Hinges",
       ("Everbilt", "National Hardware", "Hillman", "Stanley"),
       "{brand} {size} {corner} Door Hinge in {finish} ({pack})",
       "hanging interior and exterior doors",
       size=("3 in.", "3-1/2 in.", "4 in."), corner=("Square Corner", "5/8 in. Radius"),
       finish=("Satin Nickel", "Matte Black", "Oil Rubbed Bronze"), pack=("2-Pack", "3-Pack")),
    _t("wood screws", "wood screws|screws|deck screws",
       "Hardware > Fasteners > Wood Screws",
       ("SPAX", "GRK", "Everbilt", "Hillman", "Deckmate"),
       "{brand} {gauge} x {length} {drive} {coating} Wood Screws ({pack})",
       "joining wood in framing and decking",
       gauge=("#8", "#9", "#10"), length=("1-1/4 in.", "2 in.", "2-1/2 in.", "3 in."),
       drive=("Phillips", "Star Drive", "Square Drive"),
       coating=("Zinc", "Exterior Coated"), pack=("1 lb.", "5 lb.")),
    _t("drywall anchors", "drywall anchors|wall anchors|anchors",
       "Hardware > Fasteners > Drywall Anchors",
       ("E-Z Ancor", "TOGGLER", "Hillman", "Everbilt", "Cobra"),
       "{brand} {anchor} Drywall Anchors with Screws {rating} ({pack})",
       "hanging shelves, mirrors and TVs on drywall",
       anchor=("Self-Drilling", "Toggle Bolt", "Plastic Ribbed"),
       rating=("50 lb.", "75 lb.", "100 lb."), pack=("20-Pack", "50-Pack")),
    _t("caulk", "caulk|caulking|sealant",
       "Paint > Caulk & Sealants > Caulk", ("DAP", "GE", "Red Devil", "Gorilla", "Sashco"),
       "{brand} {size} {color} {material} Caulk",
       "sealing gaps around tubs, windows and trim",
       size=("2.8 oz.", "10.1 oz."), color=("White", "Clear", "Almond"),
       material=("100% Silicone", "Acrylic Latex", "Siliconized Acrylic")),
    _t("caulk gun", "caulk gun|caulking gun|caulk dispenser",
       "Paint > Caulk & Sealants > Caulk Guns",
       ("Newborn", "Red Devil", "Dripless", "Albion", "Husky"),
       "{brand} {size} {frame} Caulk Gun with {ratio} Thrust Ratio",
       "applying caulk and construction adhesive",
       size=("10 oz.", "29 oz."), frame=("Steel", "Aluminum"), ratio=("12:1", "18:1", "26:1")),
    _t("smoke detector", "smoke detector|smoke alarm|fire alarm",
       "Electrical > Safety > Smoke Detectors",
       ("First Alert", "Kidde", "X-Sense", "Google Nest"),
       "{brand} {power} {sensor} Smoke Detector ({pack})",
       "bedrooms, hallways and kitchens",
       power=("Battery Operated", "Hardwired with Battery Backup"),
       sensor=("Ionization", "Photoelectric", "Smoke and Carbon Monoxide"),
       pack=("1-Pack", "3-Pack")),
    _t("thermostat", "thermostat|thermostats|home thermostat",
       "Heating & Cooling > Thermostats",
       ("Honeywell Home", "Google Nest", "ecobee", "Emerson"),
       "{brand} {kind} Thermostat with {display} in {color}",
       "controlling heating and cooling",
       kind=("Smart Wi-Fi", "7-Day Programmable", "Non-Programmable"),
       display=("Touchscreen", "Backlit Display"), color=("White", "Black", "Stainless")),
    _t("area rug", "area rug|rug|rugs",
       "Flooring > Rugs > Area Rugs",
       ("Home Decorators Collection", "nuLOOM", "Safavieh", "StyleWell", "Mohawk Home"),
       "{brand} {color} {size} {pattern} Area Rug",
       "living rooms, bedrooms and dining rooms",
       color=("Gray", "Blue", "Beige", "Ivory", "Multi"),
       size=("5 ft. x 7 ft.", "8 ft. x 10 ft.", "2 ft. x 8 ft."),
       pattern=("Geometric", "Solid", "Medallion")),
    _t("rug pad", "rug pad|rug gripper|non slip rug pad",
       "Flooring > Rugs > Rug Pads",
       ("Mohawk Home", "Gorilla Grip", "Anji Mountain", "Safavieh"),
       "{brand} {size} {thickness} {material} Rug Pad",
       "keeping rugs in place on hard floors",
       size=("5 ft. x 7 ft.", "8 ft. x 10 ft.", "2 ft. x 8 ft."),
       thickness=("1/8 in.", "1/4 in.", "3/8 in."), material=("Felt", "Rubber", "Felt and Rubber")),
]  # fmt: skip

TYPES: dict[str, ProductType] = {t.name: t for t in _TYPE_LIST}

_SECOND_SENTENCES: tuple[str, ...] = (
    "Features {dim} of {value}",
    "Comes with a limited warranty from {brand}",
    "Its {dim} is {value}",
    "A dependable choice for DIYers and pros alike",
)

# --- queries and the judging rule ----------------------------------------------------------


@dataclass(frozen=True)
class QuerySpec:
    """A query: its text, the product type it names, and modifiers (``brand`` or attribute)."""

    text: str
    product_type: str
    modifiers: dict[str, str] = field(default_factory=dict)


def parse_attributes(text: str) -> dict[str, str]:
    """``"voltage: 20V; kit: Tool Only"`` -> ``{"voltage": "20V", "kit": "Tool Only"}``."""
    pairs = (part.split(":", 1) for part in text.split(";") if ":" in part)
    return {name.strip(): value.strip() for name, value in pairs}


def judge(query: QuerySpec, product: Mapping[str, str]) -> str:
    """The grade of ``product`` (product_type, brand, attributes) for ``query``, by the rules."""
    ptype = product["product_type"]
    if ptype == query.product_type:
        values = {**parse_attributes(product["attributes"]), "brand": product["brand"]}
        matches = all(values.get(k) == v for k, v in query.modifiers.items())
        return "exact" if matches else "substitute"
    if ptype in SUBSTITUTES.get(query.product_type, ()):
        return "substitute"
    if ptype in COMPLEMENTS.get(query.product_type, ()):
        return "complement"
    return "irrelevant"


# --- generation ----------------------------------------------------------------------------


@dataclass
class DemoCatalog:
    """Products, rule-judged (query, product, grade) rows, and the spec of each query."""

    products: pd.DataFrame
    judgments: pd.DataFrame
    queries: list[QuerySpec] = field(default_factory=list)

    def pairs(self) -> pd.DataFrame:
        """Judgments joined with product text: query, product_id, title, ..., grade."""
        cols = ["product_id", "title", "brand", "category", "attributes", "description"]
        merged = self.judgments.merge(self.products[cols], on="product_id", how="left")
        return merged[["query", *cols, "grade"]]


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _make_product(i: int, ptype: ProductType, rng: np.random.Generator) -> Row:
    brand = _pick(rng, ptype.brands)
    values = {dim: _pick(rng, opts) for dim, opts in ptype.attrs.items()}
    title = ptype.title.format(brand=brand, **{k.replace(" ", "_"): v for k, v in values.items()})
    dim = _pick(rng, list(values))
    second = _pick(rng, _SECOND_SENTENCES).format(dim=dim, value=values[dim], brand=brand)
    return {
        "product_id": f"D{i:06d}",
        "title": title,
        "brand": brand,
        "category": ptype.category,
        "attributes": "; ".join(f"{k}: {v}" for k, v in values.items()),
        "description": f"This {brand} {ptype.name} is made for {ptype.use}. {second.rstrip('.')}.",
        "product_type": ptype.name,
    }


def _make_products(n: int, rng: np.random.Generator) -> list[Row]:
    names = list(TYPES)
    order = rng.permutation(np.arange(n) % len(names))  # every type gets n // len(names) or more
    return [_make_product(i, TYPES[names[t]], rng) for i, t in enumerate(order)]


_UNITS = {
    " in.": (" in", " inch", '"'),
    " ft.": (" ft", "ft", " foot"),
    " gal.": (" gal", " gallon"),
}


def _render(value: str, rng: np.random.Generator) -> str:
    """A modifier value as a shopper types it: lower-case, with a usual spelling of the unit."""
    text = value
    for unit, forms in _UNITS.items():
        if text.endswith(unit):
            text = text[: -len(unit)] + _pick(rng, forms)
    text = re.sub(r"[,()]|\.(?!\d)", "", text.lower()).replace("-", " ")  # keep "2.8"
    return re.sub(r"\s+", " ", text).strip()


def _make_query(
    ptype: ProductType, anchor: Mapping[str, str], k: int, rng: np.random.Generator
) -> QuerySpec:
    """A query for ``ptype`` whose ``k`` modifiers are copied from the product ``anchor``."""
    values = {**parse_attributes(anchor["attributes"]), "brand": anchor["brand"]}
    dims = ["brand", *ptype.attrs]
    chosen = [str(d) for d in rng.choice(dims, size=min(k, len(dims)), replace=False)]
    phrase = _pick(rng, ptype.phrases)
    before = [_render(values["brand"], rng)] if "brand" in chosen else []  # brand comes first
    after: list[str] = []
    for dim in (d for d in chosen if d != "brand"):
        (before if rng.random() < 0.6 else after).append(_render(values[dim], rng))
    text = " ".join([*before, phrase, *after])
    return QuerySpec(text=text, product_type=ptype.name, modifiers={d: values[d] for d in chosen})


def _make_queries(products: list[Row], n: int, rng: np.random.Generator) -> list[QuerySpec]:
    by_type = _index_by_type(products)
    names = sorted(by_type)
    specs: dict[str, QuerySpec] = {}
    for attempt in range(50 * n):
        if len(specs) >= n:
            break
        name = names[attempt % len(names)]
        anchor = products[int(rng.choice(by_type[name]))]
        k = int(rng.choice(4, p=[0.2, 0.3, 0.3, 0.2]))
        spec = _make_query(TYPES[name], anchor, k, rng)
        specs.setdefault(spec.text, spec)
    return list(specs.values())


def _index_by_type(products: list[Row]) -> dict[str, np.ndarray]:
    index: dict[str, list[int]] = {}
    for i, row in enumerate(products):
        index.setdefault(row["product_type"], []).append(i)
    return {name: np.array(rows) for name, rows in index.items()}


def _sample(pool: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
    return [int(i) for i in rng.choice(pool, size=min(k, len(pool)), replace=False)]


_EMPTY = np.array([], dtype=int)


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else _EMPTY


def _unrelated(
    spec: QuerySpec, products: list[Row], by_type: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of unrelated types, and the harder ones among them (same brand or department)."""
    qtype = spec.product_type
    related = {qtype, *SUBSTITUTES.get(qtype, ()), *COMPLEMENTS.get(qtype, ())}
    pool = _concat([rows for name, rows in by_type.items() if name not in related])
    brand = spec.modifiers.get("brand")
    dept = TYPES[qtype].category.split(" > ")[0]
    if brand is not None:
        hard = [i for i in pool if products[i]["brand"] == brand]
    else:
        hard = [i for i in pool if products[i]["category"].startswith(dept)]
    return pool, np.array(hard, dtype=int)


def _candidates(
    spec: QuerySpec, products: list[Row], by_type: dict[str, np.ndarray], rng: np.random.Generator
) -> list[int]:
    """10-16 product rows for ``spec``: exacts, conflicts/substitutes, complements, unrelated."""
    qtype = spec.product_type
    same = by_type[qtype]
    is_exact = np.array([judge(spec, products[i]) == "exact" for i in same])
    exact, conflict = same[is_exact], same[~is_exact]
    subs = _concat([by_type.get(t, _EMPTY) for t in SUBSTITUTES.get(qtype, ())])
    comps = _concat([by_type.get(t, _EMPTY) for t in COMPLEMENTS.get(qtype, ())])
    picked = _sample(exact, int(rng.integers(2, 5)), rng)
    n_sub = int(rng.integers(3, 5))
    n_conflict = n_sub - n_sub // 2 if len(subs) else n_sub
    picked += _sample(conflict, n_conflict, rng)
    picked += _sample(subs, n_sub - min(n_conflict, len(conflict)), rng)
    picked += _sample(comps, int(rng.integers(2, 5)), rng)
    pool, hard = _unrelated(spec, products, by_type)
    n_irr = max(3, int(rng.integers(10, 17)) - len(picked))
    picked += _sample(hard, n_irr // 2, rng)  # same brand or department: harder negatives
    picked += _sample(np.setdiff1d(pool, picked), n_irr - min(n_irr // 2, len(hard)), rng)
    return picked


def _judge_all(
    specs: list[QuerySpec], products: list[Row], rng: np.random.Generator
) -> pd.DataFrame:
    by_type = _index_by_type(products)
    rows = []
    for spec in specs:
        for i in _candidates(spec, products, by_type, rng):
            grade = judge(spec, products[i])
            rows.append(
                {"query": spec.text, "product_id": products[i]["product_id"], "grade": grade}
            )
    return pd.DataFrame(rows, columns=["query", "product_id", "grade"])


def generate_demo(seed: int = 0, n_products: int = 2400, n_queries: int = 360) -> DemoCatalog:
    """A deterministic demo shop: ``n_products`` products, ``n_queries`` rule-judged queries."""
    rng = np.random.default_rng(seed)
    products = _make_products(n_products, rng)
    specs = _make_queries(products, n_queries, rng)
    judgments = _judge_all(specs, products, rng)
    return DemoCatalog(products=pd.DataFrame(products), judgments=judgments, queries=specs)
