"""CAD adapters: a city's calls-for-service export or NENA EIDO objects in, call events out.

Nothing here touches Kafka: the commands wire these pure translations to topics.
"""

from heart.cad.eido import (
    REASONS,
    ApcoTable,
    EidoCall,
    EidoError,
    EidoTranslator,
    call_update,
    eido_to_call,
    load_apco_table,
    translate_eido,
)
from heart.cad.importer import ImportResult, RejectExample, import_rows, localise, stable_event_id
from heart.cad.mapping import (
    CadMapping,
    Classification,
    MappingError,
    load_mapping,
    resolve_mapping_path,
    shipped_mapping,
)

__all__ = [
    "REASONS",
    "ApcoTable",
    "CadMapping",
    "Classification",
    "EidoCall",
    "EidoError",
    "EidoTranslator",
    "ImportResult",
    "MappingError",
    "RejectExample",
    "call_update",
    "eido_to_call",
    "import_rows",
    "load_apco_table",
    "load_mapping",
    "localise",
    "resolve_mapping_path",
    "shipped_mapping",
    "stable_event_id",
    "translate_eido",
]
