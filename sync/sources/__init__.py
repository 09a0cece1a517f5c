"""Exchange sources: EWS (exchangelib) and Microsoft Graph, behind one protocol."""
