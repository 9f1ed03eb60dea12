"""m3fed client: a site. Its data library (``client.data``), the ClientApp and what a round runs
(``client.app``), and the hospital admin's tools (``client.admin``)."""
