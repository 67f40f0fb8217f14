"""The peer: dlt's `rest_api` source configured correctly for the DigitalOcean billing API.

The child endpoint `invoices/{invoice_uuid}` needs its own `json_link` paginator on
`links.pages.next`; without it dlt forces a single page and silently loads 20 items per invoice.
"""

from pathlib import Path

import dlt
from dlt.sources.rest_api import rest_api_source

NEXT = {"type": "json_link", "next_url_path": "links.pages.next"}


def run_dlt(
    base_url: str, token: str, warehouse: Path, workdir: Path, *, parallelized: bool = True
) -> int:
    """Load invoices and every item into DuckDB with dlt; return the item rows loaded.

    `parallelized` is dlt's documented option for fetching a resource's pages concurrently,
    which a user who cares about speed sets; the bench measures dlt with and without it.
    """
    source = rest_api_source(
        {
            "client": {
                "base_url": f"{base_url}/v2/customers/my/",
                "auth": {"type": "bearer", "token": token},
                "paginator": NEXT,
            },
            "resource_defaults": {"parallelized": parallelized},
            "resources": [
                {
                    "name": "invoices",
                    "endpoint": {
                        "path": "invoices",
                        "params": {"per_page": 200},
                        "data_selector": "invoices",
                    },
                },
                {
                    "name": "invoice_items",
                    "endpoint": {
                        "path": "invoices/{invoice_uuid}",
                        "params": {
                            "per_page": 200,
                            "invoice_uuid": {
                                "type": "resolve",
                                "resource": "invoices",
                                "field": "invoice_uuid",
                            },
                        },
                        "data_selector": "invoice_items",
                        "paginator": NEXT,
                    },
                    "include_from_parent": ["invoice_period"],
                },
            ],
        }
    )
    pipeline = dlt.pipeline(
        pipeline_name="dlt_bench",
        destination=dlt.destinations.duckdb(str(warehouse)),
        dataset_name="dlt_bench",
        pipelines_dir=str(workdir),
    )
    pipeline.run(source)
    with pipeline.sql_client() as client:
        return client.execute_sql("SELECT count(*) FROM invoice_items")[0][0]
