"""A deterministic, labelled corpus of PII planted in realistic text.

`generate(n, seed)` returns `Sample`s: signatures, support tickets, server logs, contact pages,
chat messages, CSV and JSON records, with e-mails, phone numbers (US/Canada, UK, Germany, France,
India, China, Japan, Brazil, Australia and bare E.164), IPv4 and IPv6 addresses (full, compressed,
IPv4-mapped, scoped) at known spans. Distractors that must stay untouched sit around them: dates,
times, prices, version numbers, order and ticket numbers, coordinates, ISBNs, MAC addresses.
"""

import dataclasses
import ipaddress
import random
import re


@dataclasses.dataclass
class Sample:
  text: str
  spans: list  # (start, end, type) of every planted value, type in pii.TYPES
  forms: list  # a finer label per span, e.g. "phone:uk" or "ipv6:mapped"


FIRST = ["anna", "john", "maria", "li", "wei", "priya", "rahul", "sophie", "lukas", "yuki",
         "hiroshi", "lucas", "camille", "oliver", "fatima", "mohammed", "elena", "jose", "chloe"]
LAST = ["smith", "garcia", "mueller", "dupont", "sharma", "wang", "zhang", "tanaka", "silva",
        "oconnor", "nguyen", "kowalski", "rossi", "johansson", "ivanova", "okafor", "martin"]
DOMAINS = ["example.com", "example.org", "mail.example.net", "eng.corp.example.com",
           "example.co.uk", "uni-example.edu", "support.example.io", "example.de",
           "mx.example.com.br",
           "example.co.jp", "dept.cs.example.ac.uk", "example-shop.fr", "example.in"]
COMPANIES = ["Acme GmbH", "Globex Ltd", "Initech Inc.", "Umbrella SA", "Hooli KK", "Vandelay Ltda"]
CITIES = ["London", "Berlin", "Paris", "Mumbai", "Shanghai", "Tokyo", "São Paulo", "Toronto"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _digits(rng, n, first="0123456789"):
  return rng.choice(first) + "".join(rng.choice("0123456789") for _ in range(n - 1))


def _email(rng):
  f, l = rng.choice(FIRST), rng.choice(LAST)
  local = rng.choice([
      f"{f}.{l}", f"{f}_{l}", f"{f[0]}{l}", f"{f}+{rng.choice(['news', 'billing', 'x1'])}",
      f"{f}.{l}+tag{rng.randint(1, 99)}", f"{f}-{l}", f"{f}.{rng.choice('abcdejk')}.{l}",
      f"{f}{rng.randint(1, 2024)}", f"{l}.{f}{rng.randint(70, 99)}", "info", "support"])
  if rng.random() < 0.2:
    local = local.capitalize()
  return f"{local}@{rng.choice(DOMAINS)}", "email"


def _us(rng):
  a, e, n = _digits(rng, 3, "23456789"), _digits(rng, 3, "23456789"), _digits(rng, 4)
  return rng.choice([f"+1 {a}-{e}-{n}", f"+1 ({a}) {e}-{n}", f"({a}) {e}-{n}", f"{a}.{e}.{n}",
                     f"{a}-{e}-{n}", f"+1.{a}.{e}.{n}", f"1-{a}-{e}-{n}", f"+1 {a} {e} {n}",
                     f"+1{a}{e}{n}"])


def _uk(rng):
  london, mobile = f"20 7946 {_digits(rng, 4)}", f"7700 9{_digits(rng, 5)}"
  other = f"161 496 {_digits(rng, 4)}"
  return rng.choice([f"+44 {london}", f"0{london}", f"+44 (0){london}", f"+44 {mobile}",
                     f"0{mobile}", f"0{other}", f"+44 {other}", f"0044 {london}"])


def _de(rng):
  area = rng.choice(["30", "89", "40", "69", "221", "151", "170", "176"])
  sub = _digits(rng, rng.choice([7, 8]), "123456789")
  return rng.choice([f"+49 {area} {sub}", f"0{area} {sub}", f"+49 (0){area} {sub}",
                     f"0049 {area} {sub}", f"+49-{area}-{sub}"])


def _fr(rng):
  d = str(rng.randint(1, 7))
  pairs = [_digits(rng, 2) for _ in range(4)]
  sep = rng.choice([" ", " ", ".", "-", "\u00a0"])
  return rng.choice([f"+33 {d} " + " ".join(pairs), f"0{d}{sep}" + sep.join(pairs),
                     f"+33 (0){d} " + " ".join(pairs), f"+33{d}" + "".join(pairs)])


def _in(rng):
  a, b = _digits(rng, 5, "6789"), _digits(rng, 5)
  return rng.choice([f"+91 {a} {b}", f"+91-{a}-{b}", f"{a} {b}", f"+91 {a}{b}"])


def _cn(rng):
  m = [rng.choice(["138", "139", "150", "186", "177"]), _digits(rng, 4), _digits(rng, 4)]
  land = [rng.choice(["10", "21"]), _digits(rng, 4, "2345678"), _digits(rng, 4)]
  return rng.choice(["+86 " + " ".join(m), "-".join(m), "+86-" + "-".join(m), " ".join(m),
                     "+86 " + " ".join(land), "0" + "-".join(land)])


def _jp(rng):
  area = rng.choice(["3", "6", "90", "80", "45"])
  rest = f"{_digits(rng, 4)}-{_digits(rng, 4)}"
  return rng.choice([f"+81 {area}-{rest}", f"0{area}-{rest}", f"+81-{area}-{rest}"])


def _br(rng):
  ddd = rng.choice(["11", "21", "31", "61"])
  num = rng.choice([f"9{_digits(rng, 4)}-{_digits(rng, 4)}",
                    f"{_digits(rng, 4, '2345')}-{_digits(rng, 4)}"])
  return rng.choice([f"+55 {ddd} {num}", f"({ddd}) {num}", f"+55 ({ddd}) {num}"])


def _au(rng):
  return rng.choice([f"+61 4{_digits(rng, 2)} {_digits(rng, 3)} {_digits(rng, 3)}",
                     f"+61 2 {_digits(rng, 4, '89')} {_digits(rng, 4)}"])


def _e164(rng):
  return rng.choice([f"+1{_digits(rng, 3, '2345689')}555{_digits(rng, 4)}",
                     f"+4915{_digits(rng, 9)}", f"+336{_digits(rng, 8)}", f"+8190{_digits(rng, 8)}",
                     f"+55119{_digits(rng, 8)}",
                     f"+614{_digits(rng, 8)}", f"+9198{_digits(rng, 8)}"])


PHONES = {"us": _us, "uk": _uk, "de": _de, "fr": _fr, "in": _in, "cn": _cn, "jp": _jp, "br": _br,
          "au": _au, "e164": _e164}


def _phone(rng):
  country = rng.choice(sorted(PHONES))
  return PHONES[country](rng), "phone", f"phone:{country}"


def _ipv4_str(rng):
  return rng.choice([f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                     f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                     f"172.{rng.randint(16, 31)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                     f"203.0.113.{rng.randint(0, 255)}", f"198.51.100.{rng.randint(0, 255)}",
                     ".".join(str(rng.randint(1, 223)) for _ in range(4)),
                     f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.0.{rng.randint(0, 9)}"])


def _ipv4(rng):
  return _ipv4_str(rng), "ipv4"


def _ipv6(rng):
  groups = [0x2001, 0xdb8] + [rng.choice([0, 0, rng.randint(0, 0xffff)]) for _ in range(6)]
  addr = ipaddress.IPv6Address(sum(g << (16 * (7 - i)) for i, g in enumerate(groups)))
  form = rng.choice(["full", "full", "compressed", "compressed", "mapped", "link", "nat64"])
  if form == "full":
    text = rng.choice([addr.exploded, ":".join(f"{g:x}" for g in groups)])
  elif form == "compressed":
    text = addr.compressed
  elif form == "mapped":
    text = rng.choice(["::ffff:", "::FFFF:", "0:0:0:0:0:ffff:"]) + _ipv4_str(rng)
  elif form == "link":
    text = "fe80::" + ":".join(f"{rng.randint(1, 0xffff):x}" for _ in range(4))
    text += rng.choice(["", "", "%eth0", "%en0"])
  else:
    text = "64:ff9b::" + _ipv4_str(rng)
  if rng.random() < 0.15 and form != "mapped":
    text = text.upper()
  return text, "ipv6", f"ipv6:{form}"


def _ip(rng):
  return (_ipv4 if rng.random() < 0.5 else _ipv6)(rng)


def _hms(r, seconds=True):
  t = f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}"
  return f"{t}:{r.randint(0, 59):02d}" if seconds else t


def _ymd(r, year=2024):
  return f"{year}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"


def _n(r, lo, hi):
  return str(r.randint(lo, hi))


DISTRACTORS = {
    "date": lambda r: r.choice([
        _ymd(r), f"{r.randint(1, 28):02d}.{r.randint(1, 12):02d}.{_n(r, 1990, 2030)}",
        f"{r.randint(1, 12):02d}/{r.randint(1, 28):02d}/2023",
        f"{_n(r, 1, 28)} {r.choice(MONTHS)} 2024"]),
    "time": lambda r: r.choice([_hms(r, False), _hms(r), f"{_hms(r)}.{r.randint(0, 999):03d}"]),
    "datetime": lambda r: r.choice([f"{_ymd(r)}T{_hms(r)}Z", f"{_ymd(r, 2023)} {_hms(r)}"]),
    "clf": lambda r: f"{r.randint(1, 28):02d}/{r.choice(MONTHS)}/2024:{_hms(r)} +0000",
    "price": lambda r: r.choice([
        f"${_n(r, 1, 9)},{_n(r, 100, 999)}.99", f"€{_n(r, 5, 99)}.90", f"{_n(r, 5, 99)},90 €",
        f"USD {_n(r, 1, 99)},{_n(r, 100, 999)}", f"£ {_n(r, 1, 9)}.50", f"¥{_n(r, 1, 99)},800",
        f"R$ 1.{_n(r, 100, 999)},00"]),
    "version": lambda r: r.choice([
        f"v{_n(r, 1, 9)}.{_n(r, 0, 20)}.{_n(r, 0, 9)}",
        f"version {_n(r, 1, 9)}.{_n(r, 0, 9)}.{_n(r, 0, 9)}",
        f"{_n(r, 1, 9)}.0.{_n(r, 1, 9)}.4.5", f"Python 3.11.{_n(r, 0, 9)}",
        f"build 10.0.{_n(r, 10000, 22999)}.{_n(r, 1, 999)}",
        f"release {_n(r, 1, 9)}.{_n(r, 0, 9)}.{_n(r, 0, 9)}.{_n(r, 0, 9)}",
        f"Chrome 120.0.{_n(r, 1000, 6999)}.{_n(r, 10, 199)}"]),
    "order": lambda r: r.choice([
        f"#{_digits(r, 8, '123456789')}", f"ORD-2024-{_digits(r, 6)}",
        f"Order 2024-{_digits(r, 6)}",
        f"order no. {_digits(r, 8, '123456789')}", f"INV-{_digits(r, 4)}-{_digits(r, 4)}",
        f"ticket {_digits(r, 7, '123456789')}"]),
    "coords": lambda r: r.choice([
        f"{_n(r, 10, 60)}.{_digits(r, 4)}° N, {_n(r, 10, 170)}.{_digits(r, 4)}° W",
        f"{_n(r, 10, 60)}.{_digits(r, 4)}, {_n(r, 1, 9)}.{_digits(r, 4)}",
        f"-{_n(r, 10, 60)}.{_digits(r, 4)}, {_n(r, 100, 170)}.{_digits(r, 4)}",
        f"lat {_n(r, 10, 60)}.{_digits(r, 4)} lon -0.{_digits(r, 4)}"]),
    "isbn": lambda r: r.choice([
        "ISBN 978-3-16-148410-0", "ISBN 0-306-40615-2", "ISBN 9780306406157",
        f"ISBN 978-{_n(r, 0, 9)}-{_digits(r, 3)}-{_digits(r, 5)}-{_n(r, 0, 9)}"]),
    "number": lambda r: r.choice([
        f"{_n(r, 1, 9)},{_n(r, 100, 999)},{_n(r, 100, 999)}",
        f"{_n(r, 1, 99)} {_n(r, 100, 999)} 000", f"{_n(r, 1, 9)}.{_digits(r, 5)}", _n(r, 0, 99999),
        f"0.{_digits(r, 3)}", f"{_n(r, 1, 9)} {_digits(r, 3)} {_digits(r, 3)} {_digits(r, 3)}",
        f"{_n(r, 1, 99)}.{_n(r, 0, 9)}%"]),
    "misc": lambda r: r.choice([
        ":".join(f"{r.randint(0, 255):02x}" for _ in range(6)), "x[1::2]", "std::vector<int>",
        "16:9", f"sha1 {r.getrandbits(160):040x}", "a::b", f"port {_n(r, 1024, 65535)}",
        f"ext. {_n(r, 10, 999)}"]),
    "account": lambda r: r.choice([
        f"DE{_digits(r, 2)} {_digits(r, 4)} 0044 {_digits(r, 4)} {_digits(r, 4)} 00",
        f"GB{_digits(r, 2)} NWBK {_digits(r, 4)} {_digits(r, 4)} {_digits(r, 4)} {_digits(r, 2)}",
        f"card 5500 0000 0000 {_digits(r, 4)}", f"card 4111 1111 1111 {_digits(r, 4)}",
        f"SSN {_digits(r, 3, '123456')}-{_digits(r, 2)}-{_digits(r, 4)}",
        f"tracking 1Z{_digits(r, 3)}AA{_digits(r, 10)}"]),
    "name": lambda r: f"{r.choice(FIRST).capitalize()} {r.choice(LAST).capitalize()}",
    "company": lambda r: r.choice(COMPANIES),
    "city": lambda r: r.choice(CITIES),
    "port": lambda r: _n(r, 1024, 65535),
    "pid": lambda r: _n(r, 100, 99999),
}
PLANTS = {"email": _email, "phone": _phone, "ipv4": _ipv4, "ipv6": _ipv6, "ip": _ip}

TEMPLATES = [
    "Best regards,\n{name}\nSenior Engineer, {company}\n"
    "Tel: {phone} | Mobile: {phone}\nE-mail: {email}\n",
    "Thanks,\n{name}\n{email} · {phone}\nSent on {date} at {time}",
    "--\n{name} | {company} | {city}\nT {phone}\nM {phone}\nmailto:{email}",
    "Ticket {order} opened {datetime}: customer {name} <{email}> cannot log in from {ipv4}. "
    "Plan renewal {price} on {date}. Please call back on {phone}.",
    "Support request: the app ({version}) crashes after the update. "
    "Reach me at {phone} or {email}. Device IP {ip}, {order}.",
    "Hi team, refund {price} for {order} please; the customer ({email}, {phone}) paid on {date}.",
    "{datetime} sshd[{pid}]: Failed password for invalid user admin from {ip} port {port} ssh2",
    '{ip} - - [{clf}] "GET /api/v2/items?page=3 HTTP/1.1" 200 {pid} "-" "Mozilla/5.0"',
    "{datetime} kernel: eth0: link up, addr {ipv6}; gateway {ipv4}; mtu 1500, took {number} s",
    "{time} WARN Connection from [{ipv6}]:{port} rejected (client {version}); retry at {time}",
    "{datetime} postfix/smtpd[{pid}]: NOQUEUE: reject: RCPT from unknown[{ip}]: from=<{email}>",
    "Contact us\nHeadquarters: 12 High Street, {city}\nPhone: {phone}\nFax: {phone}\n"
    "Email: {email}\nOpening hours: Mon-Fri 09:00-17:30\nFounded {date}; handbook {isbn}",
    "Our {city} office is located at {coords}. Call {phone} 24/7 or email {email}.",
    "Kontakt: {name}, Tel. {phone}, E-Mail: {email}. Preis: {price}, gültig ab {date}.",
    "Téléphone : {phone} — courriel : {email} — horaires 9h-18h, le {date}.",
    "电话：{phone}，邮箱：{email}，服务器{ipv4}，日期{date}",
    "お問い合わせ：{phone}（平日 {time}まで）メール：{email}",
    "hey, my new number is {phone}, old one was {phone}. ping me at {email} if the box at {ip} "
    "goes down again lol. {misc}",
    "Version {version} released on {date} fixes {number} bugs; upgrade costs {price}. "
    "See {isbn}, {order}, located at {coords}. MAC {misc}.",
    "name,email,phone,city,joined\n{name},{email},{phone},{city},{date}\n"
    "{name},{email},{phone},{city},{date}",
    '{"user": "{name}", "email": "{email}", "phone": "{phone}", "last_ip": "{ip}", '
    '"created": "{datetime}", "balance": {number}}',
    "listen = {ipv4}:{port}\nlisten6 = [{ipv6}]:{port}\nadmin = {email}\n"
    "timeout = {time}\n# {misc}",
    "Refund of {price} to {account} approved for {name} ({email}); questions: {phone}.",
    "Payment failed for {account}, {order}, {datetime}. Customer IP {ip}.",
    "Meeting moved to {date} {time}. Dial-in {phone}, PIN {pid}. "
    "Budget {price}, {number} attendees.",
]
_SLOT = re.compile(r"\{(\w+)\}")


def sample(rng: random.Random) -> Sample:
  """One text from a random template with every slot filled."""
  template = rng.choice(TEMPLATES)
  parts, spans, forms, pos, n = [], [], [], 0, 0
  for m in _SLOT.finditer(template):
    parts.append(template[pos:m.start()])
    n += m.start() - pos
    kind = m.group(1)
    if kind in PLANTS:
      value, typ, *form = PLANTS[kind](rng)
      spans.append((n, n + len(value), typ))
      forms.append(form[0] if form else typ)
    else:
      value = DISTRACTORS[kind](rng)
    parts.append(value)
    n += len(value)
    pos = m.end()
  parts.append(template[pos:])
  return Sample("".join(parts), spans, forms)


def generate(n: int, seed: int = 0) -> list[Sample]:
  """`n` samples, the same for the same seed."""
  rng = random.Random(seed)
  return [sample(rng) for _ in range(n)]
