"""The shipping label: an A6 PDF with the shipment id as a Code 128 barcode (reportlab).

What a carrier label carries in a store: who sends it (the store), where it goes (the
customer's name and address from `order_placed.customer`, or the pickup store for a transfer),
the shipment id both as text and as a Code 128 barcode a scanner reads, the service (standard
or express) and the weight, which the associate writes on after weighing the parcel (the
contract has no weights: a placeholder, not an invented figure).

Pure: bytes out, nothing written to disk, so the page offers them as a download and the tests
check them with pdftotext and zbarimg.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reportlab.graphics.barcode.code128 import Code128
from reportlab.lib.pagesizes import A6
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from dashboard.store import ShipmentView, StoreError

WEIGHT_PLACEHOLDER = "Weight: ______ kg"


@dataclass(frozen=True)
class LabelData:
    """Everything printed on the label, as text."""

    shipment_id: str
    order_id: str
    sender: tuple[str, ...]
    destination: tuple[str, ...]
    service: str
    units: int
    printed_at: str


def label_data(
    ship: ShipmentView,
    placed: Mapping[str, Any] | None,
    sender: Mapping[str, Any] | None,
    destination_store: Mapping[str, Any] | None,
    now: datetime,
) -> LabelData:
    """The label's text from the shipment, the order as placed and the two locations.

    A transfer goes to the pickup store; a home delivery to the customer's name and address
    lines (optional fields of `order_placed.customer`), else its postcode and coordinates."""
    if ship.mode == "click_collect":
        raise StoreError("a click & collect parcel stays in the store: no shipping label")
    if placed is None:
        raise StoreError(
            f"order {ship.order_id} as placed is not known here (web-orders): cannot address "
            "the label"
        )
    sender_lines = (
        str((sender or {}).get("name") or ship.location_id),
        f"Store {ship.location_id}",
    )
    customer = placed.get("customer") or {}
    if ship.mode == "transfer_to_store":
        dest = destination_store or {}
        dest_id = ship.destination_location_id or str(dest.get("location_id", ""))
        destination: tuple[str, ...] = (
            f"Click & collect: {customer.get('name') or ship.order_id}",
            str(dest.get("name") or dest_id),
            f"Store {dest_id}",
        )
    else:
        address = [str(a) for a in customer.get("address_lines") or [] if str(a).strip()]
        postcode = customer.get("postcode")
        lines = [str(customer.get("name") or "Customer")]
        lines += address
        if postcode and not any(str(postcode) in a for a in address):
            lines.append(str(postcode))
        if not address:
            lines.append(
                f"({float(customer.get('lat', 0)):.4f}, {float(customer.get('lon', 0)):.4f})"
            )
        destination = tuple(lines)
    service = str((placed.get("delivery") or {}).get("service") or "standard")
    return LabelData(
        shipment_id=ship.shipment_id,
        order_id=ship.order_id,
        sender=sender_lines,
        destination=destination,
        service=service,
        units=ship.units,
        printed_at=now.strftime("%Y-%m-%d %H:%M UTC"),
    )


def label_pdf(data: LabelData) -> bytes:
    """One A6 page (105 × 148 mm), portrait."""
    buf = io.BytesIO()
    width, height = A6
    c = Canvas(buf, pagesize=A6)
    c.setTitle(f"Shipping label {data.shipment_id}")
    c.setAuthor("Stockroute store app")
    margin = 6 * mm
    y = height - margin - 4 * mm

    c.setFont("Helvetica-Bold", 13)
    c.drawString(margin, y, "SHIPPING LABEL")
    c.setFont("Helvetica-Bold", 11)
    c.drawRightString(width - margin, y, data.service.upper())
    y -= 7 * mm

    c.setFont("Helvetica", 7)
    c.drawString(margin, y, "FROM")
    y -= 3.5 * mm
    c.setFont("Helvetica", 9)
    for line in data.sender:
        c.drawString(margin, y, line[:60])
        y -= 4 * mm
    y -= 2 * mm
    c.line(margin, y, width - margin, y)
    y -= 5 * mm

    c.setFont("Helvetica", 7)
    c.drawString(margin, y, "TO")
    y -= 5 * mm
    c.setFont("Helvetica-Bold", 12)
    for i, line in enumerate(data.destination):
        if i == 1:
            c.setFont("Helvetica", 11)
        c.drawString(margin, y, line[:44])
        y -= 5.5 * mm
    y -= 1 * mm
    c.line(margin, y, width - margin, y)
    y -= 5 * mm

    c.setFont("Helvetica", 9)
    c.drawString(margin, y, f"Order: {data.order_id}")
    c.drawRightString(width - margin, y, f"Items: {data.units}")
    y -= 5 * mm
    c.drawString(margin, y, f"Service: {data.service}")
    c.drawRightString(width - margin, y, WEIGHT_PLACEHOLDER)
    y -= 5 * mm

    # the barcode: quiet zones included, scaled to the label's width
    barcode = Code128(data.shipment_id, barHeight=20 * mm, barWidth=0.4 * mm, quiet=True)
    avail = width - 2 * margin
    scale = min(1.0, avail / barcode.width)
    bottom = margin + 9 * mm
    c.saveState()
    c.translate(margin + (avail - barcode.width * scale) / 2, bottom)
    c.scale(scale, 1.0)
    barcode.drawOn(c, 0, 0)
    c.restoreState()
    c.setFont("Helvetica-Bold", 11)
    c.drawCentredString(width / 2, margin + 4 * mm, data.shipment_id)
    c.setFont("Helvetica", 6)
    c.drawCentredString(width / 2, margin, f"Printed {data.printed_at} by Stockroute")
    c.showPage()
    c.save()
    return buf.getvalue()
