"""The body of ``GET /cds-services``: the contract's two services with their prefetch templates."""

from cds_service.chart.prefetch import prefetch_templates
from cds_service.contract import SERVICES
from cds_service.knowledge import Knowledge


def discovery_document(knowledge: Knowledge) -> dict:
    prefetch = prefetch_templates(knowledge)
    return {"services": [
        {"hook": service.hook, "id": service.id, "title": service.title,
         "description": service.description, "prefetch": prefetch}
        for service in SERVICES
    ]}
