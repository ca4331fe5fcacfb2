"""CAD adapters: a city's calls-for-service export or NENA EIDO objects in, call events out.

Nothing here touches Kafka: the commands wire these pure translations to topics.
"""

from cad.eido import ApcoTable, EidoError, EidoTranslator, eido_to_call, load_apco_table
from cad.importer import ImportResult, RejectExample, import_rows, stable_event_id
from cad.mapping import CadMapping, Classification, MappingError, load_mapping, shipped_mapping

__all__ = [
    "ApcoTable",
    "CadMapping",
    "Classification",
    "EidoError",
    "EidoTranslator",
    "ImportResult",
    "MappingError",
    "RejectExample",
    "eido_to_call",
    "import_rows",
    "load_apco_table",
    "load_mapping",
    "shipped_mapping",
    "stable_event_id",
]
