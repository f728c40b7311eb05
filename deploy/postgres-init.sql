-- One database per service (services never share a database).
CREATE DATABASE orders;
CREATE DATABASE inventory;
CREATE DATABASE notifications;
