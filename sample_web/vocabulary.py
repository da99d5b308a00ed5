"""The sample web's vocabulary: concepts, modifiers, languages, hosts.

Everything here is fixed data, independent of the world seed, so that two worlds
built with different seeds share one concept table (and one ImageNet-like set).
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

YEARS = tuple(range(2014, 2023))
COVID_START = (2020, 3)  # (year, month): no caption mentions covid before this


@dataclass(frozen=True)
class ConceptSpec:
    key: str                    # stable identifier
    phrase: str                 # how English captions name it
    wnid: str | None            # ImageNet-1K class the pictures show, None if not an ImageNet class
    kind: str                   # imagenet | emerging | common | off_sense
    intro_year: int = 2014      # first year it appears
    trend: tuple = ()           # () = slope from the key hash; ("exp", s); ("bump", peak_year, width)
    lemma_wnid: str | None = None  # off_sense only: the ImageNet class whose lemma the caption borrows
    faces: bool = False         # pictures tend to contain faces (face_bboxes)
    phrases: tuple[str, ...] = ()  # off_sense only: whole caption bodies using the borrowed lemma

    def popularity(self, year: int) -> float:
        """Relative frequency multiplier for a year (0 before intro)."""
        if year < self.intro_year:
            return 0.0
        trend = self.trend or ("exp", _key_slope(self.key))
        if trend[0] == "exp":
            return math.exp(trend[1] * (year - 2018))
        if trend[0] == "bump":
            peak, width = trend[1], trend[2]
            return 0.08 + math.exp(-0.5 * ((year - peak) / width) ** 2)
        raise ValueError(f"unknown trend {trend!r} for concept {self.key}")


def _key_slope(key: str) -> float:
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big")
    return (h / 2**32 - 0.5) * 0.6  # +-0.3 per year: a 10x swing over the decade at the extremes


def _in(wnid: str, phrase: str, **kw) -> ConceptSpec:
    key = phrase.lower().replace(" ", "_").replace("-", "_") + "__" + wnid
    return ConceptSpec(key=key, phrase=phrase, wnid=wnid, kind="imagenet", **kw)


IMAGENET_CONCEPTS: tuple[ConceptSpec, ...] = (
    # animals
    _in("n01443537", "goldfish"),
    _in("n01484850", "great white shark"),
    _in("n01518878", "ostrich"),
    _in("n01614925", "bald eagle"),
    _in("n01644373", "tree frog"),
    _in("n01833805", "hummingbird"),
    _in("n01855672", "goose"),
    _in("n01882714", "koala"),
    _in("n02007558", "flamingo"),
    _in("n02051845", "pelican"),
    _in("n02056570", "king penguin"),
    _in("n02099601", "golden retriever"),
    _in("n02110958", "pug"),
    _in("n02123045", "tabby cat"),
    _in("n02128925", "jaguar"),
    _in("n02129165", "lion"),
    _in("n02129604", "tiger"),
    _in("n02132136", "brown bear"),
    _in("n02165456", "ladybug"),
    _in("n02279972", "monarch butterfly"),
    _in("n02391049", "zebra"),
    _in("n02398521", "hippopotamus"),
    _in("n02504458", "African elephant"),
    _in("n02510455", "giant panda"),
    _in("n01608432", "kite"),          # the bird of prey; the toy is an off-sense concept below
    _in("n01847000", "drake"),         # male duck; the rapper is off-sense
    _in("n02108089", "boxer"),         # the dog; the athlete is off-sense
    _in("n02412080", "ram"),           # male sheep; computer memory is off-sense
    _in("n01776313", "tick"),          # the arachnid; the check mark is off-sense
    _in("n02012849", "crane bird"),    # the bird ...
    _in("n03126707", "construction crane", trend=("exp", 0.12)),  # ... and the machine: both ImageNet classes
    # motor vehicles and other vehicles
    _in("n04285008", "sports car"),
    _in("n03100240", "convertible"),
    _in("n03770679", "minivan", trend=("exp", -0.15)),
    _in("n03930630", "pickup truck"),
    _in("n02701002", "ambulance", trend=("bump", 2020, 1.5)),
    _in("n03977966", "police van"),
    _in("n03345487", "fire engine"),
    _in("n04461696", "tow truck"),
    _in("n03670208", "limousine"),
    _in("n03594945", "jeep"),
    _in("n02930766", "taxi"),
    _in("n03785016", "moped"),
    _in("n03791053", "motor scooter"),
    _in("n04465501", "tractor"),
    _in("n03417042", "garbage truck"),
    _in("n04467665", "trailer truck"),
    _in("n04037443", "race car"),
    _in("n03444034", "go-kart"),
    _in("n04252077", "snowmobile"),
    _in("n03777568", "Model T", trend=("exp", -0.25)),
    _in("n04146614", "school bus"),
    _in("n03792782", "mountain bike"),
    _in("n04487081", "trolleybus"),
    _in("n02690373", "airliner", trend=("bump", 2018, 3.0)),
    _in("n04273569", "speedboat"),
    _in("n04310018", "steam locomotive"),
    # electronics: several fade out over the decade
    _in("n03642806", "laptop", trend=("exp", 0.08)),
    _in("n03180011", "desktop computer", trend=("exp", -0.3)),
    _in("n03584254", "iPod", trend=("exp", -0.55)),
    _in("n02992529", "cellphone", trend=("exp", -0.2)),
    _in("n03197337", "digital watch", trend=("exp", -0.2)),
    _in("n03793489", "mouse", trend=("exp", -0.1)),   # computer mouse; the animal is off-sense
    _in("n03777754", "modem", trend=("exp", -0.45)),
    _in("n04004767", "printer", trend=("exp", -0.2)),
    _in("n03085013", "computer keyboard"),
    _in("n03602883", "joystick", trend=("exp", -0.2)),
    _in("n04404412", "television", trend=("exp", -0.1)),
    _in("n03782006", "monitor"),
    _in("n03492542", "hard disk", trend=("exp", -0.35)),
    _in("n04074963", "remote control"),
    _in("n03976467", "Polaroid camera", trend=("bump", 2017, 2.0)),
    _in("n04069434", "reflex camera", trend=("exp", -0.15)),
    # household, clothing, food
    _in("n04356056", "sunglasses"),
    _in("n02769748", "backpack"),
    _in("n04507155", "umbrella"),
    _in("n04398044", "teapot"),
    _in("n07920052", "espresso"),
    _in("n07873807", "pizza"),
    _in("n07697313", "cheeseburger"),
    _in("n07614500", "ice cream"),
    _in("n07753592", "banana"),
    _in("n07745940", "strawberry"),
    _in("n07753275", "pineapple"),
    _in("n07695742", "pretzel"),
    _in("n07693725", "bagel"),
    _in("n07697537", "hotdog"),
    _in("n07583066", "guacamole", trend=("exp", 0.2)),
    _in("n07880968", "burrito"),
    _in("n03584829", "iron"),          # smoothing iron; the golf club is off-sense
    _in("n03724870", "mask"),          # a disguise; covid-era face masks reuse the lemma
    _in("n04376876", "syringe", trend=("bump", 2021, 1.0)),
    _in("n03063599", "coffee mug"),
    _in("n04254680", "soccer ball"),
    _in("n04399382", "teddy bear"),
    _in("n03938244", "pillow"),
    # places and instruments
    _in("n09472597", "volcano"),
    _in("n09428293", "seashore"),
    _in("n09332890", "lakeside"),
    _in("n02980441", "castle"),
    _in("n03028079", "church"),
    _in("n04366367", "suspension bridge"),
    _in("n03877845", "palace"),
    _in("n03792972", "mountain tent", trend=("exp", 0.15)),
    _in("n09193705", "alp"),
    _in("n02676566", "acoustic guitar"),
    _in("n03452741", "grand piano"),
    _in("n04536866", "violin"),
    _in("n03249569", "drum"),
    # people-ish ImageNet classes carry faces
    _in("n10148035", "groom", faces=True),
    _in("n10565667", "scuba diver", faces=True),
    _in("n09835506", "ballplayer", faces=True),
)

EMERGING_CONCEPTS: tuple[ConceptSpec, ...] = (
    ConceptSpec("drone", "drone", None, "emerging", 2014, ("exp", 0.35)),
    ConceptSpec("selfie_stick", "selfie stick", None, "emerging", 2014, ("bump", 2015, 1.0), faces=True),
    ConceptSpec("smartwatch", "smartwatch", None, "emerging", 2015, ("exp", 0.3)),
    ConceptSpec("hoverboard", "hoverboard", None, "emerging", 2015, ("bump", 2016, 0.8)),
    ConceptSpec("vr_headset", "VR headset", None, "emerging", 2016, ("exp", 0.3), faces=True),
    ConceptSpec("fidget_spinner", "fidget spinner", None, "emerging", 2017, ("bump", 2017, 0.6)),
    ConceptSpec("smart_speaker", "smart speaker", None, "emerging", 2017, ("exp", 0.25)),
    ConceptSpec("bubble_tea", "bubble tea", None, "emerging", 2017, ("exp", 0.4)),
    ConceptSpec("electric_scooter", "electric scooter", None, "emerging", 2018, ("exp", 0.45)),
    ConceptSpec("air_fryer", "air fryer", None, "emerging", 2019, ("exp", 0.6)),
    ConceptSpec("face_mask", "face mask", None, "emerging", 2020, ("bump", 2020, 1.2), faces=True),
    ConceptSpec("hand_sanitizer", "hand sanitizer", None, "emerging", 2020, ("bump", 2020, 0.8)),
    ConceptSpec("covid_test", "covid test kit", None, "emerging", 2020, ("bump", 2021, 0.8)),
    ConceptSpec("video_call", "video call", None, "emerging", 2020, ("exp", 0.1), faces=True),
    ConceptSpec("vaccine_card", "vaccine card", None, "emerging", 2021, ("bump", 2021, 0.6)),
    ConceptSpec("nft_artwork", "NFT artwork", None, "emerging", 2021, ("bump", 2022, 0.6)),
)

COMMON_CONCEPTS: tuple[ConceptSpec, ...] = (
    ConceptSpec("birthday_cake", "birthday cake", None, "common"),
    ConceptSpec("city_skyline", "city skyline", None, "common"),
    ConceptSpec("living_room", "living room", None, "common"),
    ConceptSpec("wedding_bouquet", "wedding bouquet", None, "common"),
    ConceptSpec("sunflower", "sunflower field", None, "common"),
    ConceptSpec("hiking_trail", "hiking trail", None, "common", faces=True),
)

# Captions that use an ImageNet lemma in another sense. The pictures show the other
# sense (their own concept); the sentence-embedding check of TiC-DataComp-Net should reject them.
OFF_SENSE_CONCEPTS: tuple[ConceptSpec, ...] = (
    ConceptSpec("toy_kite", "kite", None, "off_sense", lemma_wnid="n01608432", phrases=(
        "kids flying a {color} kite {scene}", "{color} kite with a long tail for children",
        "how to fly a {color} kite {scene}")),
    ConceptSpec("field_mouse", "mouse", None, "off_sense", lemma_wnid="n03793489", phrases=(
        "a tiny {color} field mouse eating seeds {scene}", "wild mouse hiding in the grass {scene}",
        "cute mouse with whiskers nibbling cheese")),
    ConceptSpec("jaguar_car", "Jaguar", None, "off_sense", lemma_wnid="n02128925", phrases=(
        "new {color} Jaguar sedan at the dealership", "Jaguar luxury saloon parked {scene}",
        "test drive of the {color} Jaguar coupe")),
    ConceptSpec("drake_rapper", "Drake", None, "off_sense", lemma_wnid="n01847000", faces=True, phrases=(
        "Drake performs on stage during his world tour", "rapper Drake at the music awards",
        "Drake concert tickets on sale now")),
    ConceptSpec("boxer_athlete", "boxer", None, "off_sense", lemma_wnid="n02108089", faces=True, phrases=(
        "heavyweight boxer throwing a punch in the ring", "professional boxer training {scene}",
        "the boxer celebrates his title fight victory")),
    ConceptSpec("ram_memory", "RAM", None, "off_sense", lemma_wnid="n02412080", phrases=(
        "16GB DDR4 RAM module for gaming computers", "upgrade your laptop RAM memory stick",
        "{color} RAM sticks installed on the motherboard")),
    ConceptSpec("monarch_king", "monarch", None, "off_sense", lemma_wnid="n02279972", faces=True, phrases=(
        "the monarch greets the crowd from the royal balcony", "portrait of the reigning monarch",
        "the monarch opens parliament in a ceremony")),
    ConceptSpec("tick_mark", "tick", None, "off_sense", lemma_wnid="n01776313", phrases=(
        "{color} tick mark icon on a checklist", "tick symbol vector illustration",
        "green tick checkbox button for the web")),
    ConceptSpec("golf_iron", "iron", None, "off_sense", lemma_wnid="n03584829", phrases=(
        "golfer hitting a seven iron {scene}", "{color} golf iron club set for beginners",
        "choosing the right iron for the fairway shot")),
)

ALL_CONCEPTS: tuple[ConceptSpec, ...] = (
    IMAGENET_CONCEPTS + EMERGING_CONCEPTS + COMMON_CONCEPTS + OFF_SENSE_CONCEPTS
)

COLORS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("red", (210, 40, 40)),
    ("blue", (40, 70, 215)),
    ("green", (40, 170, 60)),
    ("yellow", (235, 210, 40)),
    ("black", (25, 25, 25)),
    ("white", (245, 245, 245)),
)

SCENES: tuple[str, ...] = ("on the beach", "in the snow", "at night", "in the forest", "on the street")

# Translations for non-English captions (the concept phrase stays English, as it often does on the web).
TRANSLATIONS = {
    "de": {"colors": ("roter", "blauer", "gruener", "gelber", "schwarzer", "weisser"),
           "scenes": ("am Strand", "im Schnee", "in der Nacht", "im Wald", "auf der Strasse"),
           "templates": ("Ein {color} {concept} {scene}, fotografiert von unserem Team",
                         "Foto: {color} {concept} {scene} - jetzt ansehen und bestellen",
                         "Unser {color} {concept} {scene} ist wirklich schön geworden")},
    "fr": {"colors": ("rouge", "bleu", "vert", "jaune", "noir", "blanc"),
           "scenes": ("sur la plage", "dans la neige", "la nuit", "dans la forêt", "dans la rue"),
           "templates": ("Un {concept} {color} {scene}, photo prise par notre équipe",
                         "Découvrez notre {concept} {color} {scene} dès aujourd'hui",
                         "Voici le {concept} {color} {scene} que nous avons trouvé")},
    "es": {"colors": ("rojo", "azul", "verde", "amarillo", "negro", "blanco"),
           "scenes": ("en la playa", "en la nieve", "por la noche", "en el bosque", "en la calle"),
           "templates": ("Un {concept} {color} {scene}, foto tomada por nuestro equipo",
                         "Descubre nuestro {concept} {color} {scene} con envío gratis",
                         "Este es el {concept} {color} {scene} que encontramos ayer")},
    "it": {"colors": ("rosso", "blu", "verde", "giallo", "nero", "bianco"),
           "scenes": ("sulla spiaggia", "nella neve", "di notte", "nel bosco", "per strada"),
           "templates": ("Un {concept} {color} {scene}, foto scattata dal nostro gruppo",
                         "Scopri il nostro {concept} {color} {scene} con spedizione gratuita")},
    "pt": {"colors": ("vermelho", "azul", "verde", "amarelo", "preto", "branco"),
           "scenes": ("na praia", "na neve", "à noite", "na floresta", "na rua"),
           "templates": ("Um {concept} {color} {scene}, foto tirada pela nossa equipe",
                         "Conheça o nosso {concept} {color} {scene} com frete grátis")},
    "nl": {"colors": ("rode", "blauwe", "groene", "gele", "zwarte", "witte"),
           "scenes": ("op het strand", "in de sneeuw", "in de nacht", "in het bos", "op straat"),
           "templates": ("Een {color} {concept} {scene}, gefotografeerd door ons team",
                         "Bekijk onze {color} {concept} {scene} en bestel vandaag nog")},
    # No Latin letters at all in these: the concept is left out.
    "ru": {"colors": ("красный", "синий", "зелёный", "жёлтый", "чёрный", "белый"),
           "scenes": ("на пляже", "в снегу", "ночью", "в лесу", "на улице"),
           "templates": ("Фотография: {color} предмет {scene}, снято нашей командой",
                         "Купить {color} товар {scene} по лучшей цене")},
    "ja": {"colors": ("赤い", "青い", "緑の", "黄色い", "黒い", "白い"),
           "scenes": ("海辺で", "雪の中で", "夜に", "森の中で", "通りで"),
           "templates": ("{scene}撮影した{color}写真です", "{color}商品の写真{scene}")},
    "zh": {"colors": ("红色的", "蓝色的", "绿色的", "黄色的", "黑色的", "白色的"),
           "scenes": ("在海滩上", "在雪地里", "在夜晚", "在森林里", "在街道上"),
           "templates": ("{scene}拍摄的{color}照片", "{color}商品图片{scene}")},
}

# Share of captions per language, and the charsets their pages may use
# (first = most common; "" means the page declares no charset at all).
LANGUAGES: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("en", 0.845, ("utf-8", "utf-8", "utf-8", "iso-8859-1", "windows-1252", "")),
    ("de", 0.03, ("utf-8", "iso-8859-1", "windows-1252")),
    ("fr", 0.03, ("utf-8", "iso-8859-1", "windows-1252")),
    ("es", 0.025, ("utf-8", "iso-8859-1")),
    ("it", 0.01, ("utf-8", "iso-8859-1")),
    ("pt", 0.01, ("utf-8", "iso-8859-1")),
    ("nl", 0.01, ("utf-8", "windows-1252")),
    ("ru", 0.015, ("utf-8", "windows-1251", "koi8-r", "")),
    ("ja", 0.01, ("utf-8", "shift_jis", "euc-jp")),
    ("zh", 0.015, ("utf-8", "gbk", "gb2312")),
)

TLD_BY_LANGUAGE = {"en": ("com", "net", "org", "co.uk", "com.au"), "de": ("de", "at"), "fr": ("fr", "be"),
                   "es": ("es", "com.mx"), "it": ("it",), "pt": ("com.br", "pt"), "nl": ("nl",),
                   "ru": ("ru",), "ja": ("jp", "co.jp"), "zh": ("cn", "com.cn")}

SITE_WORDS_A = ("daily", "happy", "urban", "green", "little", "modern", "wild", "smart", "sunny", "silver",
                "bright", "open", "quiet", "rapid", "noble", "golden", "cosmic", "simple", "lucky", "north")
SITE_WORDS_B = ("news", "blog", "garden", "market", "studio", "planet", "journal", "gallery", "kitchen",
                "travel", "review", "digest", "corner", "outlet", "media", "hub", "press", "works", "post", "depot")

# Image hosts. Flickr's share falls over the decade; the decoys contain "flickr" without being Flickr.
FLICKR_HOST_FARMS = tuple(f"farm{i}.staticflickr.com" for i in range(1, 10))
FLICKR_HOST_LIVE = "live.staticflickr.com"
CDN_HOSTS = ("i.pinimg.com", "upload.wikimedia.org", "cdn.shopify.com", "i.imgur.com",
             "images.squarespace-cdn.com", "i0.wp.com", "1.bp.blogspot.com", "64.media.tumblr.com",
             "images.unsplash.com", "static.wixstatic.com")
FLICKR_DECOY_HOSTS = ("notflickr.com", "flickr.com.cdn-mirror.net", "img.flickrfans.org")
