-- Runs once, when the PostgreSQL volume is first initialised (/docker-entrypoint-initdb.d), as POSTGRES_USER
-- (airflow), connected to the Airflow metadata database POSTGRES_DB (airflow).
-- airflow-provider-fbmkto keeps its state (Fernet-encrypted FreshBooks tokens, the sync ledger, webhook
-- events, watermarks, the Marketo call budget) in a database of its own, apart from Airflow's metadata:
-- connection fbmkto_state = postgresql://airflow:airflow@postgres:5432/fbmkto_state.
-- The tables are created by the package itself (deploy/init_state_db.py in airflow-init, or on first use).
CREATE DATABASE fbmkto_state;
